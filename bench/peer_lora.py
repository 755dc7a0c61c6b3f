#!/usr/bin/env python3
"""PyTorch + PEFT peer for LoRA CPT throughput (bench/run_lora_bench.sh), beside
../shared/bench/peer_torch_llama.py: the same random-init model shapes, full training or
LoRA (peft.LoraConfig on all seven linears, r, lora_alpha = 2r), AdamW on what trains.
  --impl hf:   transformers' LlamaForCausalLM (attn_implementation="sdpa") wrapped by
               peft.get_peft_model: what a PEFT user runs;
  --impl sdpa: the shared peer's own model (fused SDPA attention) wrapped the same way.
  --dtype bf16 trains under torch.autocast("cpu", bfloat16); --grad-ckpt recomputes layers.
Prints one JSON line: tokens/s, seconds per step, trainable parameters, peak RSS (MiB)."""
import argparse, importlib.util, json, os, resource, time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "..", "shared", "bench", "peer_torch_llama.py")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="smollm135m")
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impl", choices=["hf", "sdpa"], default="hf")
    ap.add_argument("--mode", choices=["full", "lora"], default="lora")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--grad-ckpt", action="store_true")
    ap.add_argument("--peer", default=PEER)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    spec = importlib.util.spec_from_file_location("peer_torch_llama", a.peer)
    pl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pl)
    c = pl.SHAPES[a.shape]
    if a.impl == "hf":
        from transformers import LlamaConfig, LlamaForCausalLM
        cfg = LlamaConfig(hidden_size=c["dim"], num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                          num_key_value_heads=c["kv"], intermediate_size=c["ffn"], vocab_size=c["vocab"],
                          tie_word_embeddings=bool(c.get("tied")), max_position_embeddings=max(a.seq, 2048),
                          attn_implementation="sdpa")
        model = LlamaForCausalLM(cfg)
        if a.grad_ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    else:
        pl.SDPA = True
        model = pl.Llama(c, a.seq)
        model.grad_ckpt = a.grad_ckpt
        targets = ["q", "k", "v", "o", "g", "u", "dn"]
    if a.mode == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, lora_dropout=0.0, target_modules=targets))
        if a.impl == "hf" and a.grad_ckpt:
            model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    trainable = sum(p.numel() for p in {id(p): p for p in params}.values())
    idx = torch.randint(0, c["vocab"], (a.batch, a.seq + 1))

    def loss_fn():
        if a.impl == "hf":
            return model(input_ids=idx[:, :-1], labels=idx[:, :-1]).loss
        return model(idx[:, :-1], idx[:, 1:])

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16"):
            loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t) / a.steps
    tok = a.batch * a.seq
    print(json.dumps(dict(peer="pytorch-%s+peft" % torch.__version__, impl=a.impl, mode=a.mode, rank=a.rank if a.mode == "lora" else 0,
                          dtype=a.dtype, grad_ckpt=a.grad_ckpt, shape=a.shape, seq=a.seq, batch=a.batch, threads=a.threads,
                          trainable=trainable, step_s=round(dt, 4), tokens_per_s=round(tok / dt, 1),
                          peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))))


if __name__ == "__main__":
    main()
