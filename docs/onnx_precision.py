"""Which precision for the query encoder and the reader: speed and figures of each choice.

    python docs/onnx_precision.py /work/shared/eval/dev2.jsonl                  # the bundled index
    QA_CORPUS=… QA_INDEX=… python docs/onnx_precision.py questions.jsonl        # another one

For one evaluation set, the reader in fp32 torch (transformers' merged model, as citeqa read
before the ONNX export), torch dynamic int8 (``torch.ao.quantization.quantize_dynamic`` on its
Linear layers), ONNX fp32 and ONNX int8, with the fp32 ONNX query encoder; then the query encoder
in ONNX int8 with the fp32 ONNX reader. For each: the overall figures of ``qa eval``, the p50/p95 of
the network's time per call (the reader's: one question's windows; the encoder's: one
question), and for the encoder the cosine of its question vectors to the torch encoder's.
Prints one JSON object per line (docs/measurements.md has the table).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from qa.answer.reader import READER_DIR, Reader, ReaderManifest, merged_reader
from qa.answer.retrieve import Retriever
from qa.config import Settings
from qa.engine import Engine, open_engine
from qa.store.encoder import padded_tokenizer, torch_encoder
from qa.store.model import ensure_bundled_model, load_encoder
from qa.tools.evaluate import evaluate, read_cases

FIGURES = ("recall@1", "recall@3", "mrr", "sentence_has_answer", "span_f1", "abstention_recall", "latency_p50_ms", "latency_p95_ms")


class Timed:
    """A network that records how long each call takes."""

    def __init__(self, network) -> None:
        self.network, self.seconds = network, []

    def __call__(self, ids, mask):
        started = time.perf_counter()
        outputs = self.network(ids, mask)
        self.seconds.append(time.perf_counter() - started)
        return outputs

    def latency(self) -> dict:
        ms = np.array(self.seconds[1:]) * 1000  # the first call pays one-off costs
        return {"network_p50_ms": round(float(np.percentile(ms, 50)), 2), "network_p95_ms": round(float(np.percentile(ms, 95)), 2)}


def transformers_network(model):
    """The transformers reader as a network: token ids in, start and end scores out."""

    def run(ids: np.ndarray, mask: np.ndarray):
        with torch.inference_mode():
            output = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        return output.start_logits.numpy(), output.end_logits.numpy()

    return run


def readers(settings: Settings) -> dict[str, object]:
    """The four readers measured, as networks."""
    base_dir, manifest = ensure_bundled_model(settings.model_cache), ReaderManifest.read(READER_DIR)
    model = merged_reader(READER_DIR.resolve(), base_dir, manifest.layers)
    quantised = torch.ao.quantization.quantize_dynamic(merged_reader(READER_DIR.resolve(), base_dir, manifest.layers), {torch.nn.Linear}, dtype=torch.qint8)
    return {
        "torch fp32": transformers_network(model),
        "torch int8": transformers_network(quantised),
        "onnx fp32": Reader.load(replace(settings, reader_precision="fp32")).network,
        "onnx int8": Reader.load(replace(settings, reader_precision="int8")).network,
    }


def measure(engine: Engine, cases, name: str, timed: Timed, **extra) -> None:
    report, _ = evaluate(engine, cases)
    overall = report["overall"]
    print(json.dumps({"choice": name, **{k: overall[k] for k in FIGURES}, **timed.latency(), **extra}), flush=True)


def main(questions: Path) -> None:
    torch.set_num_threads(1)
    settings = Settings.from_env(encoder_precision="fp32", reader_precision="fp32")
    cases = read_cases(questions)
    engine = open_engine(settings)
    base_dir = ensure_bundled_model(settings.model_cache)
    manifest = ReaderManifest.read(READER_DIR)
    for name, network in readers(settings).items():
        timed = Timed(network)
        engine.models = replace(engine.models, reader=Reader(padded_tokenizer(base_dir), timed, manifest))
        measure(engine, cases, f"reader {name}", timed)
    engine.models = replace(engine.models, reader=Reader.load(settings))
    texts = [case.question for case in cases]
    reference = torch_encoder(base_dir).encode(texts, prompt_name="query", normalize_embeddings=True)
    for precision in ("fp32", "int8"):
        encoder = load_encoder(replace(settings, encoder_precision=precision))
        cosine = (encoder.encode(texts, prompt_name="query", normalize_embeddings=True) * reference).sum(1)
        encoder.network = timed = Timed(encoder.network)
        engine.retriever = Retriever(engine.store, encoder)
        measure(engine, cases, f"encoder onnx {precision}", timed, cosine_min=round(float(cosine.min()), 5),
                cosine_mean=round(float(cosine.mean()), 5))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
