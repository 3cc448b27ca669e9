from mnist_lightning.commands.train import cli

cli()
