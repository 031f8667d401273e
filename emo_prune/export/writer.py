"""`export_gguf`: one model folder -> one GGUF file, streamed tensor by tensor, written atomically.

Two passes over the tensor list: the first declares every tensor's name, shape and type from the
safetensors headers alone (GGUF puts all tensor infos before the data); the second reads, transforms,
encodes and writes one tensor at a time, so peak memory is one tensor (one layer's expert stack), not the
model. The file is written under a temporary name beside the target and renamed into place at the end.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter, quants

from emo_prune import events
from emo_prune.errors import ExportError, OutputError
from emo_prune.export.check import GgufLayout, gguf_layout
from emo_prune.export.llama_cpp_binding import llama_cpp_module
from emo_prune.export.metadata import write_hparams, write_provenance
from emo_prune.export.quantize import DIRECT, K_QUANTS, check_dtype, encode, k_quantize, nbytes, tensor_type
from emo_prune.export.tensors import gguf_tensors
from emo_prune.export.tokenizer import read_vocab, write_vocab
from emo_prune.io import Checkpoint, TensorReader
from emo_prune.io.atomic import check_output_file, clean_stale_files, commit_file, temp_file
from emo_prune.io.lock import FolderLock
from emo_prune.io.paths import inside


@dataclass(frozen=True)
class ExportResult:
    path: str
    dtype: str
    arch: str
    bytes: int
    tensors: int
    num_experts: int
    top_k: int
    num_shared: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_emo_prune_gguf(path: Path) -> bool:
    """A GGUF file that emo-prune wrote (its `emo_prune.version` key): the only kind `--overwrite` replaces."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return False
        from gguf import GGUFReader

        return "emo_prune.version" in GGUFReader(path).fields
    except Exception:  # noqa: BLE001 (a file gguf cannot parse is not ours)
        return False


def _check_out(model_dir: Path, out: Path, overwrite: bool) -> None:
    if out.suffix != ".gguf":
        raise OutputError(f"{out}: a GGUF file name ends in .gguf")
    if inside(model_dir, out):
        raise OutputError(f"{out} lies inside the model folder {model_dir}; write the GGUF file elsewhere")
    check_output_file(out, overwrite=overwrite, recognise=is_emo_prune_gguf, what="an emo-prune GGUF file")


def _write_file(checkpoint: Checkpoint, layout: GgufLayout, dtype: str, path: Path, name: str, progress: Any, task: int) -> int:
    """The GGUF file at `path`; `task` of `progress` counts the tensors written. Returns how many."""
    vocab_size = int(layout.arch.config["vocab_size"])
    vocab = read_vocab(checkpoint.path, vocab_size, layout.arch.config)
    tensors = gguf_tensors(checkpoint, layout)
    writer = GGUFWriter(path, layout.mapping.arch)
    try:
        write_hparams(writer, layout, vocab_size)
        writer.add_file_type(int(DIRECT[dtype][1]))
        writer.add_quantization_version(2)
        write_provenance(writer, checkpoint, name)
        write_vocab(writer, vocab)
        types = [tensor_type(dtype, t.role, t.shape) for t in tensors]
        for tensor, qtype in zip(tensors, types, strict=True):
            np_dtype = _np_dtype(qtype)  # uint8 blocks are declared by their byte shape
            shape = tensor.shape if np_dtype is not np.uint8 else quants.quant_shape_to_byte_shape(tensor.shape, qtype)
            writer.add_tensor_info(tensor.name, shape, np_dtype, nbytes(qtype, tensor.shape), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        with TensorReader(checkpoint) as reader:
            for done, (tensor, qtype) in enumerate(zip(tensors, types, strict=True), start=1):
                data = tensor.load(reader)
                if tuple(data.shape) != tensor.shape:
                    raise ExportError(f"{tensor.name}: read {tuple(data.shape)}, declared {tensor.shape}")
                writer.write_tensor_data(encode(data, qtype))
                progress.update(task, completed=done, total=len(tensors))
        writer.fout[0].flush()  # type: ignore[index]
        os.fsync(writer.fout[0].fileno())  # type: ignore[index]
    finally:
        writer.close()
    return len(tensors)


def _np_dtype(qtype: Any) -> Any:
    return {Q.F32: np.float32, Q.F16: np.float16}.get(qtype, np.uint8)


def export_gguf(
    model_dir: str | Path,
    out: str | Path,
    *,
    dtype: str = "f16",
    overwrite: bool = False,
    name: str | None = None,
    threads: int | None = None,
) -> ExportResult:
    """Export a model folder (an emo-prune build or any supported MoE checkpoint) to one GGUF file;
    progress: one "exporting DTYPE" task over the tensors (then llama.cpp's k-quantization, if asked).

    Raises ExportError (one line per reason) when llama.cpp cannot compute the model exactly."""
    start = time.perf_counter()
    dtype = check_dtype(dtype)
    model_dir, out = Path(model_dir), Path(out)
    checkpoint = Checkpoint.open(model_dir)
    layout = gguf_layout(checkpoint.architecture)
    _check_out(model_dir, out, overwrite)
    if dtype in K_QUANTS:
        llama_cpp_module()  # fail before the intermediate file is written
    name = name or model_dir.resolve().name
    direct = dtype if dtype in DIRECT else _intermediate(checkpoint)
    # one writer per file; the checks again, now that no emo-prune process races us
    with FolderLock(out), events.progress() as progress:
        task = progress.add_task(f"exporting {dtype}", total=None)
        _check_out(model_dir, out, overwrite)
        clean_stale_files(out)  # what a killed export of this file left (its pid is gone)
        tmp = temp_file(out, dtype)
        staged: Path | None = None
        try:
            count = _write_file(checkpoint, layout, direct, tmp, name, progress, task)
            if dtype in K_QUANTS:
                staged, tmp = tmp, temp_file(out, dtype)
                k_quantize(staged, tmp, dtype, threads)
            commit_file(tmp, out, replace=overwrite)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
            if staged is not None:
                staged.unlink(missing_ok=True)
    return ExportResult(
        path=str(out),
        dtype=dtype,
        arch=layout.mapping.arch,
        bytes=out.stat().st_size,
        tensors=count,
        num_experts=layout.num_experts,
        top_k=layout.top_k,
        num_shared=layout.num_shared,
        seconds=time.perf_counter() - start,
    )


def _intermediate(checkpoint: Checkpoint) -> str:
    """The file llama.cpp's k-quantizer reads: BF16 holds a bf16 source exactly (half the disk of F32);
    any other source goes through F32 (norms and routers are F32 in both)."""
    wide = {t.dtype for t in checkpoint.tensors() if len(t.shape) > 1}
    return "bf16" if wide == {"BF16"} else "f32"
