from mnist_lightning.cli import main

main()
