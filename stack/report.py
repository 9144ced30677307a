"""The human-readable VRAM report: a bar per co-resident set against the budget, and fixes."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from models.values import control_chars
from stack.deployment import Deployment
from stack.render.containers import UploadSpec
from stack.sizing.plan import Plan
from stack.units import MIB

BAR_WIDTH = 40


def printable(line: str) -> str:
    """One report line with control characters written as escapes (`\\n`, `\\u202e`): whatever a value holds (a
    GPU name, a file name, a message from ssh), it cannot start a report line of its own or hide text."""
    bad = set(control_chars(line))
    if not bad:
        return line
    return "".join(c.encode("unicode_escape").decode("ascii") if c in bad else c for c in line)


def _lines(lines: list[str]) -> str:
    return "\n".join(printable(line) for line in lines) + "\n"


def _bar(used: int, budget: int) -> str:
    if budget <= 0:
        return ""
    filled = min(BAR_WIDTH, round(BAR_WIDTH * used / budget))
    over = used > budget
    return "[" + ("#" * filled).ljust(BAR_WIDTH, ".") + "]" + (" OVER" if over else "")


def _mib(b: int) -> str:
    return f"{b / MIB:,.0f}"


def render_text(plan: Plan) -> str:
    cfg = plan.config
    gpu = cfg.gpu
    lines: list[str] = []
    if plan.placement is not None:
        lines.extend(_placement_lines(plan))
    elif gpu.cpu_only:
        lines.append("Device: CPU only (profile cpu): sizes are host memory; no VRAM budget applies.")
    else:
        lines.append(
            f"GPU: {gpu.resolved_name}: {gpu.resolved_vram_mib:,} MiB - reserve {gpu.resolved_reserve_mib:,} MiB"
            f" = budget {gpu.budget_mib:,} MiB; per-process overhead {gpu.resolved_overhead_mib} MiB"
        )
    lines.append(f"Compute-buffer rules: {plan.calibration.note}")
    lines.append("")
    header = f"{'process':<20} {'weights':>8} {'KV':>7} {'state':>6} {'compute':>8} {'ovh':>5} {'total':>8}  source"
    lines.append(header + "   (MiB)")
    for pid, p in plan.processes.items():
        tag = " (always on)" if pid in plan.always_on else ""
        lines.append(
            f"{pid:<20} {_mib(p.weights_bytes):>8} {_mib(p.kv_bytes):>7} {_mib(p.recurrent_bytes):>6} "
            f"{_mib(p.compute_bytes):>8} {_mib(p.overhead_bytes):>5} {_mib(p.total_bytes):>8}  {p.arch.source}{tag}"
        )
        if p.arch.causal:
            detail = f"{p.kv.cells} cells x {p.shape.n_stream} stream(s), {p.kv.layers_with_kv} layers with KV"
            detail += f", {p.kv.swa_cells} SWA cells" if p.kv.swa_cells else ""
        else:
            detail = "encoder: no KV cache"
        lines.append(f"{'':<20} -c {p.shape.n_ctx} -np {p.shape.n_seq_max}: {detail}")
    lines.append("")
    if plan.grouping:
        lines.extend(plan.grouping)
        lines.append("")
    if plan.placement is None:
        lines.append("Co-resident sets (every set of processes llama-swap's routing allows on the GPU at once):")
    else:
        lines.append("Co-resident sets, per pool (every set of processes that pool's llama-swap allows on its GPU at "
                     "once):")
    budget = plan.budget_bytes
    pool, indent = None, "  "
    for s in plan.scenarios:
        if s.pool is not None:
            budget, indent = s.budget_bytes, "    "
            if s.pool != pool:
                pool = s.pool
                lines.append(f"  pool {pool}:")
        lines.append(f"{indent}{' + '.join(s.members)}")
        if budget <= 0:
            lines.append(f"{indent}  {_mib(s.total_bytes)} MiB of host memory; no VRAM budget to check")
            continue
        status = "fits" if s.fits else "DOES NOT FIT"
        room = f", headroom {_mib(s.headroom_bytes)} MiB"
        lines.append(f"{indent}  {_bar(s.total_bytes, budget)} {_mib(s.total_bytes)} / {_mib(budget)} MiB: "
                     f"{status}{room}")
        for fix in s.suggestions:
            lines.append(f"{indent}  fix: {fix.text} -> {fix.model} {fix.total_mib:,.0f} MiB")
        if not s.fits and not s.suggestions:
            lines.append(f"{indent}  fix: no single-model change fits; use a smaller quant, fewer co-resident models "
                         "(a swap group), or a GPU with more VRAM")
    lines.append("")
    if plan.placement is not None:
        verdict = "every co-resident set fits its pool's GPU." if plan.fits else \
            "refused: a co-resident set does not fit its pool's GPU."
    elif budget <= 0:
        verdict = "no VRAM budget on the cpu profile: nothing was checked against a limit (host memory is not checked)."
    else:
        verdict = "every co-resident set fits." if plan.fits else "refused: a co-resident set does not fit."
    lines.append(f"Verdict: {verdict}")
    return _lines(lines)


def _placement_lines(plan: Plan) -> list[str]:
    """One line per pool: its GPU and budget, what runs there, and the headroom of its fullest set."""
    doc = plan.placement_json()
    lines = ["Placement (kubernetes): each llama-swap and the embedding server get one GPU of their pool"]
    for pool, p in doc.items():
        gpu = p["gpu"]
        lines.append(f"  pool {pool}: {gpu['name']} x{p['gpus_per_node']} per node: {gpu['vram_mib']:,} MiB - reserve "
                     f"{gpu['reserve_mib']:,} MiB = budget {p['budget_mib']:,} MiB; per-process overhead "
                     f"{gpu['overhead_mib']} MiB")
        runs = [f"llama-swap-{pool}: {', '.join(p['models'])}"] if p["models"] else []
        runs += [f"embeddings: {p['embeddings']}"] if p["embeddings"] else []
        runs += ["litellm (no GPU)"] if p["litellm"] else []
        lines.append(f"    runs {'; '.join(runs) if runs else 'nothing'}")
        if p["headroom_mib"] is not None:
            state = "fits" if p["fits"] else "DOES NOT FIT"
            lines.append(f"    fullest set: headroom {p['headroom_mib']:,.0f} MiB ({state})")
    return lines


def files_summary(deployment: Deployment) -> list[dict[str, Any]]:
    """What each container would get: image, published ports and their exposure (where it listens, whether that is
    loopback only, which key guards it), GPU, and its uploaded files. On kubernetes nothing is published on a host:
    each service has its pool and an in-cluster Service named after it, on the container's port."""
    out = []
    for svc in deployment.services:
        spec = svc.spec
        if deployment.placement:
            out.append({
                "container": spec.name,
                "image": spec.image,
                "gpu": spec.gpu,
                "pool": deployment.placement.get(svc.key),
                "service": [f"{svc.key}:{p.internal}" for p in spec.ports],
                "key": svc.exposure.key or "none",
                "files": _files(spec.uploads),
            })
            continue
        out.append({
            "container": spec.name,
            "image": spec.image,
            "gpu": spec.gpu,
            "ports": [f"{p.host_ip}:{p.external}->{p.internal}" for p in spec.ports],
            "exposure": [{
                "address": svc.exposure.address,
                "port": svc.exposure.port,
                "loopback_only": ipaddress.ip_address(svc.exposure.address).is_loopback,
                "key": svc.exposure.key or "none",
            }],
            "files": _files(spec.uploads),
        })
    return out


def _files(uploads: tuple[UploadSpec, ...]) -> list[dict[str, Any]]:
    return [
        {"path": u.path, "bytes": len(u.content.encode()), "sha256": hashlib.sha256(u.content.encode()).hexdigest()}
        for u in uploads
    ]


def render_files_text(deployment: Deployment) -> str:
    lines = ["Containers and rendered files:"]
    for entry in files_summary(deployment):
        gpu = "GPU" if entry["gpu"] else "no GPU"
        if "pool" in entry:
            key = "no key" if entry["key"] == "none" else f"key: {entry['key']}"
            lines.append(f"  {entry['container']}: {entry['image']} ({gpu}; pool {entry['pool']}; in-cluster Service "
                         f"{', '.join(entry['service'])}, {key})")
        else:
            lines.append(f"  {entry['container']}: {entry['image']} ({gpu}; {', '.join(entry['ports'])})")
        for e in entry.get("exposure", []):
            where = "loopback only" if e["loopback_only"] else "REACHABLE FROM THE NETWORK"
            key = "no key" if e["key"] == "none" else f"key: {e['key']}"
            lines.append(f"    exposure {e['address']}:{e['port']}: {where}, {key}")
        for f in entry["files"]:
            lines.append(f"    {f['path']}: {f['bytes']:,} bytes, sha256 {f['sha256'][:12]}")
    return _lines(lines)
