"""Anchor a prior's image to the classical answer: shrink toward it by the held-out error.

A GAN prior's image ``x_G`` is better than the classical answer ``x_c`` (bicubic, biharmonic,
gray copy, pseudo-inverse or TV) where the prior knows the image's domain and worse where it does
not. :func:`anchor` returns, per sample,

    x_β = P(x_c + β (x_G − x_c)),   β ∈ [0, 1],

where ``P`` is the data-consistency step of :mod:`restore.consistency` (``project`` noise-free,
``damped`` with ``λ`` from ``sigma``). ``P`` is affine (``P x = P_N x + A⁺ y``), so ``x_β`` moves
from the projected classical answer (``β = 0``) to the projected prior (``β = 1``) along the part
of ``x_G − x_c`` that the observation does not fix.

**How β is chosen** (a rule, no tuned constant): by self-validation on a seeded split of the
observed entries (:func:`restore.holdout.holdout`, fit set ``F``, held-out set ``H``). With the
prior fitted on ``F`` only (``solve(..., validate=f)`` returns such a ``prior_image``) and the
classical answer ``x_c^F`` computed from ``F`` only (:func:`restore.tasks.classical_from_entries`),
the candidate of the fit stage is ``P_F(x_c^F + β (x_G − x_c^F))``, affine in ``β``; its held-out
residual ``r(β) = r_0 − β g`` with

    r_0 = y_H − A_H P_F x_c^F,    g = A_H (P_F x_G − P_F x_c^F),

is minimized in closed form, ``β̂ = <r_0, g> / |g|²`` (a 1-D least squares per sample; ``A_H``,
``y_H`` are the :class:`~restore.holdout.Restricted` view and observation of the held-out
entries). With noise of std ``sigma`` on ``y`` the noise adds ``|H| σ²`` to every candidate's
expected residual alike, so the same ``β̂`` is unbiased. The estimate is noisy when few entries
are held out (SR x8 of a 64x64 image holds out 6 low-resolution pixels), and a too large ``β``
costs more than a too small one (the classical answer is the safe side), so ``β`` is taken one
standard error below it, the one-standard-error rule of cross-validation:

    β = clip(β̂ − margin · se, 0, 1),   se² = |r_0 − β̂ g|² / ((n_H − 1) |g|²),

``n_H`` the number of held-out observation entries, ``margin = 1``. Where the two answers agree on
the held-out entries (``g = 0`` to rounding, e.g. an operator that determines ``x``) ``β = 0``.

What it can and cannot see (measured in ``benchmarks/anchor.py``): the held-out entries test
``x_G`` where they resemble the unobserved content. They do for random missing pixels and
Gaussian compressed sensing (there ``β`` is within 0.2 dB of the oracle's), not for a contiguous
hole, lost high frequencies or lost colour: there the held-out pixels are easy for the classical
interpolation, ``β`` comes out small, and the result stays near the (projected) classical answer,
which is the safe side.

Shapes: ``prior_image``, ``classical_image``, ``classical_fit`` ``(B, C, H, W)`` in ``[0, 1]``;
``y`` ``(B, *out)`` as ``operator`` outputs it; returns ``(image (B, C, H, W) in [0, 1], β (B,))``.

Example::

    >>> import torch
    >>> from operators import Mask
    >>> from restore.holdout import holdout
    >>> x = torch.rand(2, 3, 16, 16)
    >>> A = Mask((torch.rand(1, 1, 16, 16) > 0.5).float())
    >>> y = A(x)
    >>> split = holdout(y, A, 0.2, seed=0)
    >>> image, beta = anchor(x, y, A, torch.zeros_like(x), split, classical_fit=torch.zeros_like(x))
    >>> beta.tolist()                       # the prior is the truth: all of it is kept
    [1.0, 1.0]
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import torch

from operators import LinearOperator

from .consistency import damped, noise_lambda, project
from .holdout import Restricted, Split

__all__ = ["anchor", "held_out_beta", "blend"]


def _consistent(x: torch.Tensor, y: torch.Tensor, operator, sigma: Optional[float]) -> torch.Tensor:
    """``P x``: the projection (noise-free) or the damped correction with ``λ`` from ``sigma``."""
    return damped(x, y, operator, noise_lambda(x, y, operator, sigma)) if sigma else project(x, y, operator)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.double() * b.double()).flatten(1).sum(1)


def _check_images(ref: torch.Tensor, **images) -> None:
    for name, t in images.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a float tensor (B, C, H, W), got "
                            f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
        if t.shape != ref.shape or t.dim() != 4:
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected the prior image's (B, C, H, W) "
                             f"{tuple(ref.shape)}")


def _check_sigma(sigma) -> Optional[float]:
    if sigma is None:
        return None
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be None or a finite number >= 0 (the noise std of y), got {sigma!r}")
    return float(sigma) or None


@torch.no_grad()
def held_out_beta(prior_image: torch.Tensor, classical_fit: torch.Tensor, y: torch.Tensor,
                  operator: LinearOperator, split: Split, *, sigma: Optional[float] = None,
                  margin: float = 1.0) -> torch.Tensor:
    """``β`` ``(B,)`` in ``[0, 1]``: the minimizer of the held-out residual of
    ``P_F(x_c^F + β(x_G − x_c^F))``, less ``margin`` standard errors (see the module; 0: the
    plain least-squares minimizer).

    ``prior_image`` must be fitted on ``split.fit`` only and ``classical_fit`` computed from those
    entries only (see the module); otherwise the held-out entries are not held out.
    """
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 <= margin < math.inf:
        raise ValueError(f"margin must be a finite number >= 0 (standard errors), got {margin!r}")
    if not isinstance(operator, LinearOperator):
        raise TypeError(f"held_out_beta needs an operators.LinearOperator, got {type(operator).__name__}")
    if not isinstance(split, Split):
        raise TypeError(f"split must be a restore.holdout.Split, got {type(split).__name__}")
    _check_images(prior_image, classical_fit=classical_fit)
    sigma = _check_sigma(sigma)
    fit, held = Restricted(operator, split.fit).to(y.device), Restricted(operator, split.held).to(y.device)
    y_fit, y_held = fit.observe(y), held.observe(y)
    base = _consistent(classical_fit, y_fit, fit, sigma)
    on_held = held(_consistent(prior_image, y_fit, fit, sigma)), held(base)
    g, r0 = on_held[0] - on_held[1], y_held - on_held[1]
    scale = _dot(on_held[0], on_held[0]) + _dot(on_held[1], on_held[1])
    decides = _dot(g, g) > (torch.finfo(g.dtype).eps * 100) ** 2 * scale  # else both answers agree there
    gg = _dot(g, g).clamp_min(1e-300)
    beta = _dot(r0, g) / gg
    n_held = (held.weight > 0).to(y.device).expand_as(y).flatten(1).sum(1).double()
    spread = (r0.double() - beta.view(-1, *([1] * (r0.dim() - 1))) * g.double()).square().flatten(1).sum(1)
    beta = beta - margin * (spread / ((n_held - 1).clamp_min(1) * gg)).sqrt()
    return torch.where(decides, beta, torch.zeros_like(beta)).clamp(0, 1).to(prior_image.dtype)


@torch.no_grad()
def blend(prior_image: torch.Tensor, classical_image: torch.Tensor, beta, y: torch.Tensor, operator, *,
          sigma: Optional[float] = None) -> torch.Tensor:
    """``P(x_c + β (x_G − x_c))`` clipped to ``[0, 1]``: ``(B, C, H, W)``; ``beta`` a number or ``(B,)``."""
    _check_images(prior_image, classical_image=classical_image)
    b = torch.as_tensor(beta, dtype=prior_image.dtype, device=prior_image.device)
    if b.dim() > 1 or (b.dim() == 1 and b.numel() != prior_image.shape[0]) or bool(((b < 0) | (b > 1) | b.isnan()).any()):
        raise ValueError(f"beta must be in [0, 1], a number or one value per sample ({prior_image.shape[0]}), "
                         f"got {b.tolist()}")
    b = b.expand(prior_image.shape[0]).view(-1, 1, 1, 1)
    mixed = classical_image + b * (prior_image - classical_image)
    return _consistent(mixed, y, operator, _check_sigma(sigma)).clamp(0, 1)


def anchor(prior_image: torch.Tensor, y: torch.Tensor, operator: LinearOperator, classical_image: torch.Tensor,
           split: Optional[Split] = None, *, classical_fit: Optional[torch.Tensor] = None,
           sigma: Optional[float] = None, beta=None, margin: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(image, β)``: the prior's image shrunk toward the classical answer, made consistent with ``y``.

    Args:
        prior_image: the prior's own image ``(B, C, H, W)`` (``Result.prior_image``; fitted on
            ``split.fit`` when ``split`` is given, e.g. ``solve(..., validate=f)``).
        y: the observation ``(B, *out)``; operator: the linear operator that made it.
        classical_image: the classical answer from every entry of ``y`` (``classical_baseline``).
        split: the held-out split the prior was fitted with (``holdout(y, operator, f, seed)``,
            the same ``f`` and ``seed``); with ``classical_fit`` (the classical answer from
            ``split.fit`` only) ``β`` is chosen per sample by :func:`held_out_beta`.
        sigma: the noise std of ``y`` (damped consistency); None or 0: projection.
        beta: a fixed ``β`` (number or ``(B,)``) instead of the held-out rule, e.g. 0.5 for the
            plain average.
        margin: standard errors taken off the held-out ``β`` (:func:`held_out_beta`).
    """
    if beta is None:
        if split is None or classical_fit is None:
            raise ValueError("anchor needs split and classical_fit (held-out choice of beta) or a fixed beta")
        beta = held_out_beta(prior_image, classical_fit, y, operator, split, sigma=sigma, margin=margin)
    image = blend(prior_image, classical_image, beta, y, operator, sigma=sigma)
    return image, torch.as_tensor(beta, dtype=image.dtype).expand(image.shape[0]).clone()
