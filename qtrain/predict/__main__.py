"""`python -m qtrain.predict ckpt_path=<run>/checkpoints/best.pt input=<images>` (qtrain.predict.label_images)."""

from qtrain.predict.label_images import cli

if __name__ == "__main__":
    cli()
