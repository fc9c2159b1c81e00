"""Exact per-sample gradient norms: one module per layer family, each form registered per layer class.

`register_norm_form(layer_class, fn)` adds a closed form for a layer of your own
(forms.py); `PerSampleGradNorms` (persample.py) hooks a model and adds the
per-layer squares up. Built-in forms: linear.py (Linear), conv.py (Conv1d/2d),
norm.py (BatchNorm), groupnorm.py (LayerNorm, GroupNorm, RMSNorm); any other
layer with parameters takes generic.py's exact torch.func fallback.
"""
from . import conv, groupnorm, linear, norm  # noqa: F401  (each registers its forms)
from .forms import NORM_FORMS, NormForm, norm_form, register_norm_form
from .persample import DEFAULT_WORKSPACE_MB, PerSampleGradNorms, frozen_params

__all__ = [
           "DEFAULT_WORKSPACE_MB",
           "NORM_FORMS",
           "NormForm",
           "PerSampleGradNorms",
           "frozen_params",
           "norm_form",
           "register_norm_form",
]
