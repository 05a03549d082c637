"""Using a trained model: `python -m qtrain.predict` labels new images (label_images.py),
`export=true` writes a torch.export program (export.py), every run writes
`model_info.json` (model_info.py), and `qtrain.train` / `qtrain.compose` run
experiments from Python (api.py)."""
