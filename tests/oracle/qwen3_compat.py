"""qwen3_compat.py: a Qwen3ForCausalLM for transformers versions that lack one (< 4.51).

It is the oracle for the qwen3 fixture only; it is not a general Qwen3 port (eager
attention, no sliding window, no cache-specific paths beyond what Qwen2 provides).
transformers before 4.51 has no Qwen3 (tests/requirements.txt pins 4.51.3, where this
module is a no-op and upstream Qwen3 is the oracle); for those versions we build it
from the Qwen2 pieces plus the two things Qwen3 changes:
  * head_dim is a free config field (q_proj: hidden -> heads*head_dim, o_proj back);
  * q_norm / k_norm: an RMSNorm over head_dim (weight [head_dim]) applied to every
    query / key head after the projection and BEFORE RoPE; attention_bias defaults
    to False (Qwen2 always has q/k/v biases).
Parameter names and config.json keys follow the upstream Qwen3 checkpoints
(model.layers.N.self_attn.q_norm.weight, "model_type": "qwen3",
"architectures": ["Qwen3ForCausalLM"]), so a directory written here loads in a
newer transformers and vice versa.  register() makes AutoConfig /
AutoModelForCausalLM resolve "qwen3"; with a transformers that has Qwen3 it does
nothing and the upstream classes are used.
"""
import math

import torch
from torch import nn

import transformers
from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config
from transformers.models.qwen2 import modeling_qwen2 as q2

NATIVE = hasattr(transformers, "Qwen3ForCausalLM")


class Qwen3Config(Qwen2Config):
    model_type = "qwen3"

    def __init__(self, head_dim=None, attention_bias=False, **kw):
        super().__init__(**kw)
        self.head_dim = head_dim if head_dim is not None else self.hidden_size // self.num_attention_heads
        self.attention_bias = attention_bias


class Qwen3Attention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.groups = self.num_heads // self.num_kv
        b = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=b)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv * self.head_dim, bias=b)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv * self.head_dim, bias=b)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)
        self.q_norm = q2.Qwen2RMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.k_norm = q2.Qwen2RMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(self, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                output_attentions=False, use_cache=False, cache_position=None,
                position_embeddings=None, **kw):
        bsz, t, _ = hidden_states.shape
        q = self.q_norm(self.q_proj(hidden_states).view(bsz, t, self.num_heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(hidden_states).view(bsz, t, self.num_kv, self.head_dim)).transpose(1, 2)
        v = self.v_proj(hidden_states).view(bsz, t, self.num_kv, self.head_dim).transpose(1, 2)
        cos, sin = position_embeddings
        q, k = q2.apply_rotary_pos_emb(q, k, cos, sin)
        if past_key_value is not None:
            k, v = past_key_value.update(k, v, self.layer_idx,
                                         {"sin": sin, "cos": cos, "cache_position": cache_position})
        k = q2.repeat_kv(k, self.groups)
        v = q2.repeat_kv(v, self.groups)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            w = w + attention_mask[:, :, :, : k.shape[-2]]
        w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(bsz, t, self.num_heads * self.head_dim)
        return self.o_proj(o), (w if output_attentions else None), past_key_value


class Qwen3DecoderLayer(q2.Qwen2DecoderLayer):
    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        self.self_attn = Qwen3Attention(config, layer_idx)


class Qwen3PreTrainedModel(q2.Qwen2PreTrainedModel):
    config_class = Qwen3Config
    _no_split_modules = ["Qwen3DecoderLayer"]


class Qwen3Model(Qwen3PreTrainedModel, q2.Qwen2Model):
    def __init__(self, config):
        q2.Qwen2Model.__init__(self, config)
        self.layers = nn.ModuleList([Qwen3DecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.post_init()


class Qwen3ForCausalLM(Qwen3PreTrainedModel, q2.Qwen2ForCausalLM):
    def __init__(self, config):
        q2.Qwen2ForCausalLM.__init__(self, config)
        self.model = Qwen3Model(config)
        self.post_init()


_registered = False


def register():
    """Make AutoConfig/AutoModelForCausalLM know "qwen3" (no-op if transformers has it)."""
    global _registered
    if NATIVE or _registered:
        return
    AutoConfig.register("qwen3", Qwen3Config)
    AutoModelForCausalLM.register(Qwen3Config, Qwen3ForCausalLM)
    _registered = True


def classes():
    """(config class, model class) for Qwen3: upstream if available, else ours."""
    if NATIVE:
        return transformers.Qwen3Config, transformers.Qwen3ForCausalLM
    register()
    return Qwen3Config, Qwen3ForCausalLM
