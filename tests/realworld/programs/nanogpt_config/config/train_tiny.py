# a tiny character-level model on data/tiny, small enough for a laptop CPU
out_dir = "out-tiny"
eval_interval = 10
eval_iters = 5
always_save_checkpoint = False

dataset = "tiny"
batch_size = 8
block_size = 16

n_embd = 24
dropout = 0.0

learning_rate = 1e-2
max_iters = 30
