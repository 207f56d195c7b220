"""One resumable training loop for every learned plugin (and third parties): checkpoints, budget, log.

    run = Trainer(out, modules={"g": net}, optimizers={"g": ("g", None)}, total_steps=N, seed=0, threads=1)
    run.resume()                                   # picks up OUT/checkpoint.* if there is one
    while run.step < run.total_steps and run.within(budget_s):
        x, t = patches.batch(pairs, run.seed, run.step, 16, 128)
        run.optimize("g", loss(...))               # zero_grad, backward, Adam step at the scheduled rate
        run.advance({"loss": ...})                 # EMA, log, progress with ETA, checkpoint every few minutes

Why it is shaped this way:
- A step's data and noise depend on ``(seed, step)`` only and the learning rate is a function of ``step``,
  so the checkpoint (weights, Adam moments, EMA, step) is the whole state: a run killed and resumed gives
  the same weights as one that never stopped, at the same thread count (``torch.set_num_threads``).
- Checkpoints are safetensors plus JSON, written to a temporary name and renamed: never pickled, never half.
- The log (``training.json``) carries steps, losses, validation, the corpus manifest's sha256, the seed,
  threads, and wall and CPU seconds summed over every session the run spanned.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

WARMUP = 500
ETA_MIN_FRACTION = 0.02  # the cosine ends at 2 % of the peak rate


def scheduled_lr(step: int, total: int, peak: float, warmup: int = WARMUP) -> float:
    """Linear warm-up from 1 % then a cosine to ``ETA_MIN_FRACTION`` of ``peak`` at ``total``."""
    if step < warmup:
        return peak * (0.01 + 0.99 * step / warmup)
    t = min(1.0, (step - warmup) / max(total - warmup, 1))
    return peak * (ETA_MIN_FRACTION + (1 - ETA_MIN_FRACTION) * 0.5 * (1 + math.cos(math.pi * t)))


def arguments(doc: str, steps: int, validate_every: int, lr: float = 5e-4) -> argparse.ArgumentParser:
    """The command line every training script on this toolkit takes (described by ``doc``'s first line):
    ``--out``, ``--corpus``, ``--steps``, ``--batch``, ``--lr``, ``--seed``, ``--threads``, ``--hours``,
    ``--checkpoint-minutes``, ``--validate-every``, ``--export``; a script adds its own."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="run folder: checkpoint.*, training.json")
    ap.add_argument("--corpus", type=Path, default=None, help="corpus folder (python -m genpost.learned.corpus build)")
    ap.add_argument("--steps", type=int, default=steps, help="total steps of the run (the schedule spans them)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hours", type=float, default=None, help="stop this session after this long (checkpointed)")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--validate-every", type=int, default=validate_every)
    ap.add_argument("--export", type=Path, default=None, help="write the EMA weights here and stop")
    return ap


def seed_everything(seed: int, threads: int) -> None:
    """Call before building the modules: their initial weights come from torch's seeded generator, and
    results depend on the thread count."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)


class Trainer:
    """Named modules, named Adam optimisers over them (or over a parameter subset), an EMA of one module,
    and the run's state on disk in ``out``."""

    def __init__(
        self, out: str | os.PathLike, modules: dict, optimizers: dict[str, tuple], *, total_steps: int, seed: int = 0,
        threads: int = 1, ema: str | None = None, ema_decay: float = 0.999, checkpoint_s: float = 300.0,
        log_extra: dict | None = None, progress=sys.stderr,
    ):  # fmt: skip
        """``optimizers``: name -> (peak lr, parameters or None for all of the module with that name, betas)."""
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.modules, self.total_steps, self.seed, self.threads = modules, total_steps, seed, threads
        self.opts, self.peaks = {}, {}
        for name, spec in optimizers.items():
            peak, params, *betas = spec
            params = list(params) if params is not None else list(modules[name].parameters())
            self.opts[name] = torch.optim.Adam(params, peak, betas=tuple(betas[0]) if betas else (0.9, 0.999))
            self.peaks[name] = peak
        self.ema_name, self.ema_decay = ema, ema_decay
        self.ema = {k: v.detach().clone() for k, v in modules[ema].state_dict().items()} if ema else None
        self.step = 0
        self.checkpoint_s = checkpoint_s
        self.log = {"seed": seed, "threads": threads, "total_steps": total_steps, "wall_s": 0.0, "cpu_s": 0.0,
                    "history": [], "validation": [], **(log_extra or {})}  # fmt: skip
        self.progress = progress
        self._t0, self._c0 = time.time(), time.process_time()
        self._last_ckpt = self._last_print = time.time()
        self._sums: dict[str, float] = {}
        self._n = 0
        self._session_start_step = 0
        self.stopping = False
        self._handlers: dict = {}

    # ---------------------------------------------------------- one step
    def lr(self, name: str, step: int | None = None) -> float:
        return scheduled_lr(self.step if step is None else step, self.total_steps, self.peaks[name])

    def optimize(self, name: str, loss, scale: float = 1.0, clip: float | None = 1.0) -> None:
        """Backward ``loss`` and step optimiser ``name`` at its scheduled rate (times ``scale``), its
        gradient's norm clipped to ``clip`` (None: not clipped)."""
        opt = self.opts[name]
        for group in opt.param_groups:
            group["lr"] = self.lr(name) * scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            self.torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()

    def advance(self, losses: dict[str, float], validate=None, validate_every: int = 0) -> None:
        """End the step: update the EMA, accumulate losses, validate, print progress, checkpoint on time."""
        if self.ema is not None:
            with self.torch.no_grad():
                for k, v in self.modules[self.ema_name].state_dict().items():
                    if v.dtype.is_floating_point:
                        self.ema[k].mul_(self.ema_decay).add_(v.detach(), alpha=1 - self.ema_decay)
                    else:
                        self.ema[k].copy_(v)
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + float(v)
        self._n += 1
        self.step += 1
        if self.step % 500 == 0 or self.step == self.total_steps:
            self.log["history"].append({"step": self.step, **{k: v / self._n for k, v in self._sums.items()},
                                        "cpu_s": round(self.cpu_s, 1)})  # fmt: skip
            self._sums, self._n = {}, 0
        if validate is not None and validate_every and (self.step % validate_every == 0 or self.step == self.total_steps):
            self.validate(validate)
        now = time.time()
        if now - self._last_print > 10 or self.step == self.total_steps:
            self._print_progress()
            self._last_print = now
        if now - self._last_ckpt > self.checkpoint_s:
            self.save()

    def validate(self, fn) -> dict:
        """``fn(trainer)`` -> a dict (losses or dB on the held-out sources), logged with the step."""
        result = {"step": self.step, **fn(self)}
        self.log["validation"].append(result)
        print(f"validation {json.dumps(result)}", file=self.progress, flush=True)
        return result

    @property
    def cpu_s(self) -> float:
        return self.log["cpu_s"] + time.process_time() - self._c0

    @property
    def wall_s(self) -> float:
        return self.log["wall_s"] + time.time() - self._t0

    def within(self, budget_s: float | None) -> bool:
        """False once this session has run ``budget_s`` seconds (None: no budget) or was asked to stop
        (SIGTERM or SIGINT, see ``stop_on_signals``): the loop ends and ``finish`` checkpoints."""
        return not self.stopping and (budget_s is None or time.time() - self._t0 < budget_s)

    def stop_on_signals(self) -> None:
        """Make SIGTERM and SIGINT end the run at the next step boundary, checkpointed, instead of losing
        the steps since the last checkpoint (a background run ignores SIGINT; ``kill`` sends SIGTERM)."""

        def stop(signum, frame) -> None:
            self.stopping = True

        for sig in (signal.SIGTERM, signal.SIGINT):
            self._handlers[sig] = signal.signal(sig, stop)

    def _print_progress(self) -> None:
        done = self.step - self._session_start_step
        rate = done / max(time.time() - self._t0, 1e-9)
        left = (self.total_steps - self.step) / rate if rate > 0 else float("inf")
        width = 30
        filled = int(width * self.step / self.total_steps)
        last = self.log["history"][-1] if self.log["history"] else {}
        losses = " ".join(f"{k} {v:.6g}" for k, v in last.items() if k not in ("step", "cpu_s"))
        eta = f"{left / 3600:.1f} h" if left > 3600 else f"{left / 60:.1f} min"
        print(f"[{'#' * filled}{'.' * (width - filled)}] {self.step}/{self.total_steps} {rate:.1f} steps/s ETA {eta} {losses}",
              file=self.progress, flush=True)  # fmt: skip

    # ---------------------------------------------------------- state on disk
    def _tensors(self) -> dict:
        t = {}
        for name, m in self.modules.items():
            for k, v in m.state_dict().items():
                t[f"module.{name}.{k}"] = v.detach().contiguous()
        for name, opt in self.opts.items():
            for i, state in opt.state_dict()["state"].items():
                for k, v in state.items():
                    t[f"opt.{name}.{i}.{k}"] = (v if hasattr(v, "dtype") else self.torch.tensor(v)).detach().contiguous()
        if self.ema is not None:
            for k, v in self.ema.items():
                t[f"ema.{k}"] = v.contiguous()
        return t

    def save(self) -> None:
        """Write ``checkpoint.safetensors`` and ``checkpoint.json`` atomically (temp name, then rename)."""
        from safetensors.torch import save_file

        state = dict(self.log, step=self.step, wall_s=round(self.wall_s, 1), cpu_s=round(self.cpu_s, 1))
        tmp = self.out / "checkpoint.safetensors.part"
        save_file(self._tensors(), str(tmp))
        os.replace(tmp, self.out / "checkpoint.safetensors")
        tmp = self.out / "checkpoint.json.part"
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.out / "checkpoint.json")
        self._last_ckpt = time.time()

    def resume(self, strict: bool = True) -> bool:
        """Load ``out/checkpoint.*`` when present (True); the run continues at its step. ``strict``: refuse a
        checkpoint of another seed, thread count or step total (False, for exporting: take its values)."""
        path = self.out / "checkpoint.safetensors"
        if not path.exists():
            return False
        from safetensors.torch import load_file

        state = json.loads((self.out / "checkpoint.json").read_text())
        for key in ("seed", "threads", "total_steps"):
            if not strict:
                self.log[key] = state[key]
            elif state[key] != self.log[key]:
                raise ValueError(f"checkpoint has {key}={state[key]}, this run {self.log[key]}: start a new --out")
        tensors = load_file(str(path))
        for name, m in self.modules.items():
            prefix = f"module.{name}."
            m.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, opt in self.opts.items():
            sd = opt.state_dict()
            prefix = f"opt.{name}."
            for k, v in tensors.items():
                if k.startswith(prefix):
                    i, field = k[len(prefix):].split(".", 1)
                    sd["state"].setdefault(int(i), {})[field] = v
            opt.load_state_dict(sd)
        if self.ema is not None:
            self.ema = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        self.total_steps = self.log["total_steps"]
        self.step = self._session_start_step = state["step"]
        self.log.update({k: state[k] for k in ("history", "validation", "wall_s", "cpu_s")})
        for k, v in state.items():  # what the run recorded beside (e.g. the trunk it started from)
            self.log.setdefault(k, v)
        self.log["sessions"] = state.get("sessions", 1) + 1
        self._t0, self._c0 = time.time(), time.process_time()
        return True

    def summary(self) -> dict:
        """The log with its totals, as shipped beside exported weights (``training.json``)."""
        return dict(self.log, step=self.step, wall_s=round(self.wall_s, 1), cpu_s=round(self.cpu_s, 1),
                    cpu_hours=round(self.cpu_s / 3600, 3))  # fmt: skip

    def finish(self) -> dict:
        """Save a last checkpoint, give the signals back their handlers and return ``summary()``."""
        self.save()
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers.clear()
        return self.summary()

    def ema_module(self, make):
        """A fresh module from ``make()`` holding the EMA weights (what gets exported)."""
        m = make()
        m.load_state_dict(self.ema if self.ema is not None else self.modules[self.ema_name].state_dict())
        return m
