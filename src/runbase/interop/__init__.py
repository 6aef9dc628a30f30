"""Runs from other trackers into a store, and runs out of it in their formats.

Importers (MLflow, Weights & Biases, TensorBoard, Neptune) read another system's
records and write them as runbase runs through runbase.records.external; exporters
write a store's runs in another system's on-disk layout. Each importer answers an
:class:`~runbase.interop.report.ImportReport`. Third-party readers (mlflow, wandb,
tensorboard) are imported only inside the function that needs them, with a clear
"pip install" message when absent: importing this package costs nothing.
"""
