// export.h — writing one search's steering directions for use outside steerclear:
// a safetensors file (any framework) and a llama.cpp control-vector GGUF file.
//
// Input: dirs float32 [L][C] (L decoder blocks, C hidden size), row l being the direction for
// block l: the mean over all tokens of (residual stream with adapter − base residual stream) at
// the OUTPUT of decoder block l (0-based). Steering adds it there: h_l += scale * d_l. Both
// files store the directions unscaled (scale 1); the user picks the scale at load time.
//
// Block numbering in each format:
//   steerclear / safetensors:  direction.<l>, l = 0..L-1, added to the output of block l. In
//       Hugging Face terms that is hidden_states[l+1] of output_hidden_states=True, except for
//       the last block, where HF's hidden_states[L] already has the final RMSNorm applied
//       (the direction goes in before that norm).
//   llama.cpp control vector:  direction.<k> is added to the output of block k (0-based) too,
//       so block l is written as direction.<l> for l = 1..L-1. llama.cpp cannot steer block 0:
//       its loader rejects direction.0 and keeps no slot for layer 0, so block 0's direction
//       is left out of the GGUF file (and listed in its steerclear.omitted_blocks key).
//   Sources read (ggml-org/llama.cpp, no code taken): common/common.cpp
//   (common_control_vector_load_one: tensor "direction.<k>", k >= 1, 1-D F32, all of one length,
//   stored at data[(k-1)*n_embd]; metadata is not read), src/llama-adapter.cpp
//   (llama_adapter_cvec::apply copies data[(il-1)*n_embd] into tensors[il] for il >= 1;
//   apply_to adds tensors[il] in layer il), src/models/qwen2.cpp (build_cvec(cur, il) right
//   after the block's second residual add, i.e. on the block output "l_out"), and
//   ggml/src/gguf.cpp (file layout). Load in llama.cpp with
//   `--control-vector-scaled FILE SCALE` (or --control-vector FILE for scale 1).
#ifndef STEERCLEAR_EXPORT_H
#define STEERCLEAR_EXPORT_H

#include "steerclear/core.h"

typedef struct {
    const char *model;       // required: HF id ("Qwen/Qwen2.5-14B-Instruct") or the model directory's basename
    int search;              // search index (0-based); < 0 leaves steerclear.search out
    const char *mode;        // adapter mode ("shared" | "per-block"); NULL leaves steerclear.mode out
    const char *model_hint;  // GGUF controlvector.model_hint; NULL → "qwen2" (llama.cpp's architecture name)
    // Optional extra string metadata (e.g. "steerclear.linearity_score" → "0.87", "steerclear.run" → dir).
    const char *const *extra_keys;
    const char *const *extra_values;
    size_t n_extra;
} sc_export_meta;

// safetensors: tensors direction.0 .. direction.<L-1>, each F32 [C], in block order, with
// string metadata steerclear.{format_version, model, search, mode, num_blocks, hidden_size,
// block_indexing, scale_convention, direction_definition} plus the extras. Atomic write.
sc_status sc_export_direction_safetensors(const char *path, const float *dirs, int L, int C,
                                          const sc_export_meta *meta);

// llama.cpp control vector (GGUF v3): tensors direction.1 .. direction.<L-1>, each F32 [C];
// metadata general.architecture = "controlvector", controlvector.model_hint,
// controlvector.layer_count (i32, the number of direction tensors = L-1, as llama.cpp's
// cvector-generator writes it), general.alignment = 32, and the same steerclear.* strings as the
// safetensors file plus steerclear.omitted_blocks = "0". Needs L >= 2. Atomic write.
sc_status sc_export_direction_gguf(const char *path, const float *dirs, int L, int C,
                                   const sc_export_meta *meta);

#endif
