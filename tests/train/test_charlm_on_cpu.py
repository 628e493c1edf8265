"""rspo_patch.charlm.save_hf_folder: the HF folder it writes is the one ``save_pretrained`` writes, loads back with
``AutoModelForCausalLM`` / ``AutoTokenizer.from_pretrained`` to the same logits, and saving imports no deepspeed."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rspo_patch.charlm import build_char_tokenizer, build_tiny_llama, save_hf_folder

ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["12+34=", "7*8=", "100-1="]


def tied_llama(tok):
    """A small Llama with tied input/output embeddings (SmolLM2's layout): save must drop the tied duplicate."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))


def read_folder(path: Path) -> dict:
    """{file name: parsed content}: JSON files as dicts (without transformers_version), safetensors as (metadata,
    {name: tensor}), other files as bytes."""
    from safetensors import safe_open

    out = {}
    for f in sorted(path.iterdir()):
        if f.suffix == ".json":
            d = json.loads(f.read_text())
            d.pop("transformers_version", None)
            out[f.name] = d
        elif f.suffix == ".safetensors":
            with safe_open(str(f), "pt") as h:
                out[f.name] = (h.metadata(), {k: h.get_tensor(k) for k in h.keys()})
        else:
            out[f.name] = f.read_bytes()
    return out


@pytest.mark.parametrize("build", ["char_llama", "tied"])
def test_folder_equals_save_pretrained_and_round_trips_to_the_same_logits(build, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = build_char_tokenizer()
    model = build_tiny_llama(len(tok), tokenizer=tok) if build == "char_llama" else tied_llama(tok)
    save_hf_folder(model, tok, str(tmp_path / "ours"))
    model.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    ours, ref = read_folder(tmp_path / "ours"), read_folder(tmp_path / "hf")
    assert ours.keys() == ref.keys() and "model.safetensors" in ours
    for name in ours:
        if name == "model.safetensors":
            (meta, tensors), (ref_meta, ref_tensors) = ours[name], ref[name]
            assert meta == ref_meta and tensors.keys() == ref_tensors.keys()
            assert all(torch.equal(tensors[k], ref_tensors[k]) for k in tensors)
        else:
            assert ours[name] == ref[name], name

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ours", dtype=torch.float32).eval()
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path / "ours")
    enc = tok(TEXTS, return_tensors="pt", padding=True)
    assert torch.equal(loaded_tok(TEXTS, return_tensors="pt", padding=True)["input_ids"], enc["input_ids"])
    with torch.no_grad():
        assert torch.equal(loaded(**enc).logits, model.eval()(**enc).logits)


def test_saving_imports_no_deepspeed(tmp_path):
    """In a fresh interpreter, building and saving a char model leaves deepspeed unimported (save_pretrained's
    unwrap_model -> accelerate imports it when installed). Control: the same script with save_pretrained does import
    it, so the check can fail."""
    pytest.importorskip("deepspeed", reason="the check needs deepspeed installed (CI has it: the OpenRLHF CPU stack)")

    def imported(save: str) -> list[str]:
        code = (
            "import sys\n"
            "from rspo_patch.charlm import build_char_tokenizer, build_tiny_llama, save_hf_folder\n"
            "tok = build_char_tokenizer()\n"
            "model = build_tiny_llama(len(tok), tokenizer=tok)\n"
            f"{save}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'deepspeed'))\n"
        )
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-2000:]
        return ast.literal_eval(done.stdout.strip().splitlines()[-1])

    assert imported(f"save_hf_folder(model, tok, {str(tmp_path / 'm')!r})") == []
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert imported(f"model.save_pretrained({str(tmp_path / 'hf')!r})")  # control: save_pretrained imports it
