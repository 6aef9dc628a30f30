"""A LightningModule + LightningDataModule regression, in the style of the Lightning
examples: argparse for the run's knobs, ``save_hyperparameters()``, a ``ModelCheckpoint``
that keeps the best epoch by validation loss, then ``trainer.test(ckpt_path="best")``,
which loads that checkpoint back from disk."""

from argparse import ArgumentParser

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split


class CSVDataModule(L.LightningDataModule):
    def __init__(self, path: str, batch_size: int) -> None:
        super().__init__()
        self.path, self.batch_size = path, batch_size

    def setup(self, stage: str) -> None:
        with open(self.path) as f:
            next(f)
            rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
        data = torch.tensor(rows)
        full = TensorDataset(data[:, :3], data[:, 3:])
        self.train, self.val, self.test = random_split(
            full, [56, 12, 12], generator=torch.Generator().manual_seed(0)
        )

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.test, batch_size=self.batch_size)


class Regressor(L.LightningModule):
    def __init__(self, hidden_dim: int = 8, learning_rate: float = 1e-2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(3, hidden_dim), nn.Tanh(), nn.Linear(hidden_dim, 1))

    def forward(self, x):
        return self.net(x)

    def _loss(self, batch):
        x, y = batch
        return F.mse_loss(self(x), y)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)


def main() -> None:
    parser = ArgumentParser()
    parser.add_argument("--data", default="data/regression.csv")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--hidden_dim", type=int, default=8)
    parser.add_argument("--learning_rate", type=float, default=1e-2)
    parser.add_argument("--max_epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    L.seed_everything(args.seed)
    dm = CSVDataModule(args.data, args.batch_size)
    # linear scaling rule: the learning rate follows the batch size (base batch 16)
    model = Regressor(args.hidden_dim, args.learning_rate * args.batch_size / 16)
    checkpoint = ModelCheckpoint(
        dirpath="checkpoints", filename="best-{epoch}", monitor="val_loss", mode="min", save_top_k=1
    )
    trainer = L.Trainer(
        max_epochs=args.max_epochs,
        accelerator="cpu",
        devices=1,
        callbacks=[checkpoint],
        logger=CSVLogger("logs", name="regression"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        deterministic=True,
    )
    trainer.fit(model, datamodule=dm)
    print("best checkpoint:", checkpoint.best_model_path)
    trainer.test(datamodule=dm, ckpt_path="best")


if __name__ == "__main__":
    main()
