"""AtomNet: PyTorch models from stage configs, training, int8 quantization and .tflite export.

The only package in the repository that imports torch. Modules: ``config`` (stage configs),
``model`` (nn.Modules and the per-layer summary), ``data`` (Fashion-MNIST, ImageFolder),
``train`` (the paper's recipe, checkpoints, resume), ``quantize`` (TFLite-style int8 and the
integer-only forward pass), ``export_tflite`` (the .tflite flatbuffer), ``cli`` (verbs).
"""
