"""The L2MU's LIF populations over a whole window with hand-written backpropagation through time.

Same laws as snnTorch's Leaky / Synaptic with subtract reset (docs/l2mu.md, "Neuron laws"), evaluated for all T steps
at once: the forward loops in time without building an autograd graph, and the backward is the exact gradient of
those equations (the reset R[t] is detached, as snnTorch does; dS/dU is the neuron's own surrogate):

    U[t] = b U[t-1] + I[t] - R[t] thr,   R[t] = H(U[t-1] - thr),   S[t] = H(U[t] - thr)
    (Synaptic: I[t] is replaced by I_syn[t] = a I_syn[t-1] + I_in[t])

Tensors are time-major inside: (T, B, N). `lif_sequence` serves feed-forward populations whose input currents are
known for every step beforehand; `cell_sequence` runs the recurrent u -> m -> h cell of docs/l2mu.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Surrogate = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Law:
    """One population's constants: b = clamp(beta, 0, 1), thr, a = clamp(alpha, 0, 1) (Synaptic only)."""

    beta: torch.Tensor
    threshold: torch.Tensor
    alpha: torch.Tensor | None
    surrogate: Surrogate


def surrogate_slope(surrogate: Surrogate, v: torch.Tensor) -> torch.Tensor:
    """dS/dU of the spike function at v = U - thr, elementwise (the surrogate's own backward)."""
    with torch.enable_grad():
        v = v.detach().requires_grad_()
        return torch.autograd.grad(surrogate(v), v, torch.ones_like(v))[0]


def decay_scan(g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reverse linear recurrence y[t] = g[t] + b y[t+1] over time (dim 0), as one product with b^(k-t), k >= t."""
    T = g.shape[0]
    lag = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # t - k
    kernel = torch.where(lag <= 0, b ** (-lag).clamp(min=0).to(g.dtype), torch.zeros((), dtype=g.dtype))
    return (kernel @ g.flatten(1)).view_as(g)


def _previous(seq: torch.Tensor) -> torch.Tensor:
    """seq[t-1] for every t, zero at t = 0."""
    return torch.cat([torch.zeros_like(seq[:1]), seq[:-1]])


class _Neuron:
    """Forward state of one population while stepping in time (no autograd)."""

    def __init__(self, law: Law, shape: tuple[int, ...], like: torch.Tensor) -> None:
        self.b, self.thr = law.beta.item(), law.threshold.item()
        self.a = None if law.alpha is None else law.alpha.item()
        self.mem = like.new_zeros(shape)
        self.syn = like.new_zeros(shape) if self.a is not None else None
        self.reset = (self.mem > self.thr).to(like.dtype)  # R[0] = H(0 - thr)

    def fire(self, current: torch.Tensor, mem_out: torch.Tensor, syn_out: torch.Tensor | None,
             spk_out: torch.Tensor) -> None:
        """One step: write U[t] (and I_syn[t]) and S[t] into the given views."""
        if self.syn is not None:
            torch.add(current, self.syn, alpha=self.a, out=syn_out)  # I_syn[t] = a I_syn[t-1] + I[t]
            self.syn, current = syn_out, syn_out
        torch.add(current, self.mem, alpha=self.b, out=mem_out)  # U[t] = b U[t-1] + I[t] - R[t] thr
        mem_out.sub_(self.reset, alpha=self.thr)
        torch.gt(mem_out, self.thr, out=spk_out)  # S[t] = H(U[t] - thr)
        self.mem, self.reset = mem_out, spk_out


Grads = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]


def _law_grads(law: Law, g_spk: torch.Tensor, mem: torch.Tensor, syn: torch.Tensor | None,
               spk: torch.Tensor) -> Grads:
    """Given dL/dS (T, B, N) complete for every step: the gradients of the input current, b, a and thr."""
    dv = g_spk * surrogate_slope(law.surrogate, mem - law.threshold)  # through S[t] = H(U[t] - thr)
    d_mem = decay_scan(dv, law.beta)  # dL/dU[t] = dv[t] + b dL/dU[t+1]
    return _law_grads_from_mem(law, d_mem, dv, mem, syn, spk)


def _law_grads_from_mem(law: Law, d_mem: torch.Tensor, dv: torch.Tensor, mem: torch.Tensor,
                        syn: torch.Tensor | None, spk: torch.Tensor) -> Grads:
    """From dL/dU and dv = dL/dS dS/dU (T, B, N): the gradients of the input current, b, a and thr."""
    reset = torch.cat([(torch.zeros_like(mem[:1]) > law.threshold).to(mem.dtype), spk[:-1]])
    d_thr = -(dv.sum() + (d_mem * reset).sum())
    d_beta = (d_mem * _previous(mem)).sum()
    if syn is None:
        return d_mem, d_beta, None, d_thr
    d_syn = decay_scan(d_mem, law.alpha)  # dL/dI_syn[t] = dL/dU[t] + a dL/dI_syn[t+1]
    return d_syn, d_beta, (d_syn * _previous(syn)).sum(), d_thr


class _LifSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, current, beta, threshold, alpha, surrogate):
        law = Law(beta, threshold, alpha, surrogate)
        mem, spk = torch.empty_like(current), torch.empty_like(current)
        syn = torch.empty_like(current) if alpha is not None else None
        neuron = _Neuron(law, current.shape[1:], current)
        for t in range(current.shape[0]):
            neuron.fire(current[t], mem[t], None if syn is None else syn[t], spk[t])
        ctx.law = law
        ctx.save_for_backward(mem, spk, *([] if syn is None else [syn]))
        ctx.mark_non_differentiable(mem)
        return spk, mem

    @staticmethod
    def backward(ctx, g_spk, _g_mem):
        mem, spk, *syn = ctx.saved_tensors
        d_cur, d_beta, d_alpha, d_thr = _law_grads(ctx.law, g_spk, mem, syn[0] if syn else None, spk)
        return d_cur, d_beta, d_thr, d_alpha, None


def lif_sequence(current: torch.Tensor, law: Law) -> tuple[torch.Tensor, torch.Tensor]:
    """Spikes and membranes (T, B, N) of a population driven by currents (T, B, N) known for every step."""
    return _LifSequence.apply(current.contiguous(), law.beta, law.threshold, law.alpha, law.surrogate)


class _Cell(torch.autograd.Function):
    """u, m, h over a window. Per step: [I_u, I_h, I_m] = [x_u, x_h, 0] + [s_h[t-1], s_m[t-1]] w_rec, then
    u fires, I_m += s_u b_mat, m fires, I_h += s_m w_m, h fires."""

    @staticmethod
    def forward(ctx, drive, w_rec, b_mat, w_m, betas, thrs, alphas, surrogates, sizes):
        M, H, Md = sizes
        T, B = drive.shape[:2]
        laws = [Law(betas[i], thrs[i], None if alphas is None else alphas[i], surrogates[i]) for i in range(3)]
        # prev[t] = [s_h[t-1], s_m[t-1]]; prev[t+1] holds this step's h and m spikes
        prev = drive.new_zeros(T + 1, B, H + Md)
        s_u, mem, syn = drive.new_empty(T, B, M), drive.new_empty(T, B, M + H + Md), None
        if alphas is not None:
            syn = drive.new_empty(T, B, M + H + Md)
        cols = {"u": slice(0, M), "h": slice(M, M + H), "m": slice(M + H, M + H + Md)}
        neurons = {pop: _Neuron(law, (B, cols[pop].stop - cols[pop].start), drive)
                   for pop, law in zip(("u", "m", "h"), laws)}
        spk_out = {"u": lambda t: s_u[t], "m": lambda t: prev[t + 1, :, H:], "h": lambda t: prev[t + 1, :, :H]}
        for t in range(T):
            current = torch.addmm(drive[t], prev[t], w_rec)  # recurrent currents of u, h, m in one product
            for pop in ("u", "m", "h"):
                c = cols[pop]
                if pop == "m":
                    current[:, c].addmm_(s_u[t], b_mat)  # I_m,k += B_bar s_u,k[t]
                if pop == "h":
                    current[:, c].addmm_(prev[t + 1, :, H:], w_m)  # I_h += W_m s_m[t]
                neurons[pop].fire(current[:, c], mem[t, :, c], None if syn is None else syn[t, :, c], spk_out[pop](t))
        ctx.laws, ctx.sizes = laws, sizes
        ctx.save_for_backward(prev, s_u, mem, w_rec, b_mat, w_m, *([] if syn is None else [syn]))
        ctx.mark_non_differentiable(mem)
        return s_u, prev[1:, :, H:], prev[1:, :, :H], mem

    @staticmethod
    def backward(ctx, g_u, g_m, g_h, _g_mem):
        prev, s_u, mem, w_rec, b_mat, w_m, *syn = ctx.saved_tensors
        syn = syn[0] if syn else None
        M, H, Md = ctx.sizes
        T = s_u.shape[0]
        law = dict(zip(("u", "m", "h"), ctx.laws))
        cols = {"u": slice(0, M), "h": slice(M, M + H), "m": slice(M + H, M + H + Md)}
        spikes = {"u": s_u, "m": prev[1:, :, H:], "h": prev[1:, :, :H]}
        slope = {pop: surrogate_slope(law[pop].surrogate, mem[:, :, cols[pop]] - law[pop].threshold) for pop in law}
        b = {pop: law[pop].beta.item() for pop in law}
        a = {pop: law[pop].alpha.item() for pop in law} if syn is not None else None
        d_mem, dv = torch.zeros_like(mem), torch.zeros_like(mem)  # dL/dU[t]; dL/dS[t] dS/dU[t]
        d_cur = d_mem if syn is None else torch.zeros_like(mem)  # dL/d(input current) per step
        grad_in = {pop: g for pop, g in (("u", g_u), ("m", g_m), ("h", g_h)) if g is not None}
        d_prev = torch.zeros_like(prev[0])  # dL/d[s_h[t], s_m[t]] through step t+1's recurrent product
        w_rec_t, w_m_t, b_mat_t = w_rec.T, w_m.T, b_mat.T
        for t in range(T - 1, -1, -1):
            for pop in ("h", "m", "u"):
                c = cols[pop]
                if pop == "h":  # through step t+1's recurrent product
                    g = d_prev[:, :H]
                elif pop == "m":  # and through I_h += W_m s_m[t]
                    g = torch.addmm(d_prev[:, H:], d_cur[t, :, cols["h"]], w_m_t)
                else:  # through I_m,k += B_bar s_u,k[t]
                    g = d_cur[t, :, cols["m"]] @ b_mat_t
                g = g + grad_in[pop][t] if pop in grad_in else g
                torch.mul(g, slope[pop][t], out=dv[t, :, c])
                if t + 1 < T:  # dU[t] = dv[t] + b dU[t+1]
                    torch.add(dv[t, :, c], d_mem[t + 1, :, c], alpha=b[pop], out=d_mem[t, :, c])
                else:
                    d_mem[t, :, c] = dv[t, :, c]
                if syn is not None:  # dI_syn[t] = dU[t] + a dI_syn[t+1]
                    nxt = d_cur[t + 1, :, c] if t + 1 < T else torch.zeros_like(dv[t, :, c])
                    torch.add(d_mem[t, :, c], nxt, alpha=a[pop], out=d_cur[t, :, c])
            d_prev = d_cur[t] @ w_rec_t
        d_w_rec = prev[:-1].flatten(0, 1).T @ d_cur.flatten(0, 1)
        d_w_m = spikes["m"].flatten(0, 1).T @ d_cur[:, :, cols["h"]].flatten(0, 1)
        grads = {pop: _law_grads_from_mem(law[pop], d_mem[:, :, cols[pop]], dv[:, :, cols[pop]],
                                          mem[:, :, cols[pop]], None if syn is None else syn[:, :, cols[pop]],
                                          spikes[pop]) for pop in law}
        d_betas = torch.stack([grads[p][1] for p in ("u", "m", "h")])
        d_thrs = torch.stack([grads[p][3] for p in ("u", "m", "h")])
        d_alphas = None if syn is None else torch.stack([grads[p][2] for p in ("u", "m", "h")])
        return d_cur, d_w_rec, None, d_w_m, d_betas, d_thrs, d_alphas, None, None


def cell_sequence(drive: torch.Tensor, w_rec: torch.Tensor, b_mat: torch.Tensor, w_m: torch.Tensor,
                  laws: tuple[Law, Law, Law], sizes: tuple[int, int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spikes of u, m, h (T, B, N) and membranes (T, B, M + H + M d) in the column order u, h, m.

    drive (T, B, M + H + M d): [E_x s_in[t], W_x s_in[t], 0]; w_rec (H + M d, M + H + M d) maps
    [s_h[t-1], s_m[t-1]] to the recurrent currents of u, h, m; b_mat (M, M d) spreads B_bar over the M channels;
    w_m (M d, H) = W_m^T; laws in the order u, m, h; sizes = (M, H, M d)."""
    betas = torch.stack([law.beta for law in laws])
    thrs = torch.stack([law.threshold for law in laws])
    alphas = None if laws[0].alpha is None else torch.stack([law.alpha for law in laws])
    return _Cell.apply(drive.contiguous(), w_rec, b_mat, w_m, betas, thrs, alphas,
                       tuple(law.surrogate for law in laws), sizes)
