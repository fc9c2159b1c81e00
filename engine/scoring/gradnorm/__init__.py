"""Exact per-sample gradient norms and inner products: one module per layer family, each form registered per class.

`register_norm_form(layer_class, fn)` adds a closed form for a layer of your own
(forms.py), `register_dot_form(layer_class, fn)` its inner-product form;
`PerSampleGradNorms` (persample.py) hooks a model and adds the per-layer squares
(and, given parameter-shaped vectors, the per-layer inner products g_n · v) up.
Built-in forms: linear.py (Linear), conv.py (Conv1d/2d), norm.py (BatchNorm),
groupnorm.py (LayerNorm, GroupNorm, RMSNorm); any other layer with parameters
takes generic.py's exact torch.func fallback.
"""
from . import conv, groupnorm, linear, norm  # noqa: F401  (each registers its forms)
from .forms import DOT_FORMS, NORM_FORMS, DotForm, NormForm, dot_form, norm_form, register_dot_form, register_norm_form
from .persample import DEFAULT_WORKSPACE_MB, PerSampleGradNorms, frozen_params

__all__ = [
           "DEFAULT_WORKSPACE_MB",
           "DOT_FORMS",
           "NORM_FORMS",
           "DotForm",
           "NormForm",
           "PerSampleGradNorms",
           "dot_form",
           "frozen_params",
           "norm_form",
           "register_dot_form",
           "register_norm_form",
]
