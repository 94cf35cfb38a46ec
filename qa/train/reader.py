"""Training the reader (``python -m qa train-reader``): all 12 layers of the bundled e5 with a span
head and an answerability output, on PIAF-train windows shaped like the product's
(``qa.train.reader_examples``).

The layers are fully fine-tuned (``--adapter-rank 0``, the default) or carry LoRA adapters of
that rank on every linear layer, merged when saved: the two are compared on the same steps. Word,
position and type embeddings stay frozen (the reader shares them with the query encoder). The
loss is the span's cross-entropy (the first token as the span of a window without the answer) plus
the answerability output's binary cross-entropy. A checkpoint every ``checkpoint_every`` steps
lets the same command resume a stopped run; the shipped reader (``qa.store.reader_weights``) is
its layers in int8 with a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np

from qa.answer.reader import BASE_MODEL, BASE_PACKAGE, MANIFEST, READER_DIR, WEIGHTS, ReaderManifest
from qa.answer.windows import WINDOW_CHARS
from qa.config import Settings
from qa.store.model import ensure_bundled_model
from qa.store.reader_weights import pack
from qa.train.reader_examples import TrainQuestion, WindowExample, training_windows, write_training_corpus


@dataclass(frozen=True)
class TrainingSettings:
    epochs: int = 1
    batch: int = 16
    learning_rate: float = 8e-5
    warmup_share: float = 0.1  # of the steps, then a linear decay to 0
    adapter_rank: int = 0  # 0: full fine-tuning; else LoRA adapters of this rank on every linear layer
    max_tokens: int = 256
    stride: int = 64  # tokens shared by two pieces of a window too long for max_tokens
    negative_share: float = 0.38  # "not here" windows among all
    checkpoint_every: int = 100  # steps between two saves of the run so far
    seed: int = 0
    limit: int = 0  # at most this many questions (0: all), for a quick run
    max_steps: int = 0  # stop after this many batches (0: every batch), to compare settings on the same steps
    threads: int = 0  # torch threads on a CPU (0: one per core)


def load_network(base_dir: Path, adapter_rank: int):
    """The trainable reader on the converted e5 folder: its encoder (embeddings frozen, adapters
    when ``adapter_rank``), a span head and an answerability output."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # the dropped pooler is expected
    encoder = AutoModel.from_pretrained(str(base_dir), add_pooling_layer=False)
    for parameter in encoder.embeddings.parameters():
        parameter.requires_grad = False
    if adapter_rank:
        from peft import LoraConfig, get_peft_model

        encoder = get_peft_model(encoder, LoraConfig(r=adapter_rank, lora_alpha=adapter_rank, lora_dropout=0.05,
                                                     target_modules=["query", "key", "value", "dense"]))

    class ReaderNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            width = encoder.config.hidden_size
            self.encoder, self.spans, self.answerable = encoder, torch.nn.Linear(width, 2), torch.nn.Linear(width, 1)

        def forward(self, ids, mask):
            hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
            spans = self.spans(hidden)
            return spans[..., 0], spans[..., 1], self.answerable(hidden[:, 0]).squeeze(-1)

        def shipped_state(self) -> dict:
            """The layers (adapters merged) and heads, named as ``qa.store.networks`` reads them."""
            layers = self.encoder
            if adapter_rank:
                import copy

                layers = copy.deepcopy(self.encoder).merge_and_unload()
            state = {name: value for name, value in layers.state_dict().items() if name.startswith("encoder.")}
            state.update({f"spans.{k}": v for k, v in self.spans.state_dict().items()})
            state.update({f"answerable.{k}": v for k, v in self.answerable.state_dict().items()})
            return {name: value.detach().float().cpu() for name, value in state.items()}

    return ReaderNetwork()


def encode(tokenizer, examples: list[WindowExample], max_tokens: int, stride: int) -> list[dict]:
    """Token ids of each (question, window) piece, the answer's first and last token (0 and 0:
    not in this piece) and whether the piece holds it."""
    encoded = tokenizer([e.question for e in examples], [e.text for e in examples], truncation="only_second",
                        max_length=max_tokens, stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    items = []
    for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
        example = examples[sample]
        first = last = 0
        if example.answer_start >= 0:
            begin, end = example.answer_start, example.answer_start + len(example.answer)
            in_text = [i for i, s in enumerate(encoded.sequence_ids(row)) if s == 1]
            offsets = encoded["offset_mapping"][row]
            if in_text and offsets[in_text[0]][0] <= begin and offsets[in_text[-1]][1] >= end:
                first = next(i for i in in_text if offsets[i][1] > begin)
                last = [i for i in in_text if offsets[i][0] < end][-1]
        items.append({"input_ids": encoded["input_ids"][row], "start": first, "end": last})
    return items


def batches(items: list[dict], size: int, rng: random.Random) -> list[list[dict]]:
    """Batches of pieces of similar length (less padding), in random order."""
    order = sorted(range(len(items)), key=lambda i: (len(items[i]["input_ids"]), rng.random()))
    grouped = [[items[i] for i in order[k : k + size]] for k in range(0, len(order), size)]
    rng.shuffle(grouped)
    return grouped


def collate(batch: list[dict]):
    import torch

    width = max(len(item["input_ids"]) for item in batch)
    ids = torch.full((len(batch), width), 1, dtype=torch.long)  # <pad> is 1
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"])
        mask[row, : len(item["input_ids"])] = 1
    return ids, mask, torch.tensor([i["start"] for i in batch]), torch.tensor([i["end"] for i in batch])


def train_reader(settings: Settings, train_files: list[Path], work: Path, training: TrainingSettings, output: Path = READER_DIR) -> dict:
    """Build the windows (or reuse those ``work`` holds), train (from ``work``'s checkpoint when a
    run was stopped), and write the reader and its manifest to ``output``."""
    import torch
    from torch.nn import functional
    from tqdm import tqdm
    from transformers import AutoTokenizer

    random.seed(training.seed)
    np.random.seed(training.seed)
    torch.manual_seed(training.seed)
    began = time.perf_counter()
    data_hash = training_data_sha256(train_files)
    questions, examples = prepared_examples(settings, train_files, work, training, data_hash)
    prepared = time.perf_counter() - began
    torch.set_num_threads(training.threads or os.cpu_count() or 1)  # answering uses one (Settings.torch_threads); training, every core
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base_dir = ensure_bundled_model(settings.model_cache)
    items = encode(AutoTokenizer.from_pretrained(str(base_dir)), examples, training.max_tokens, training.stride)
    model = load_network(base_dir, training.adapter_rank).to(device)
    model.train()
    rng = random.Random(training.seed)
    plan = [batch for _ in range(training.epochs) for batch in batches(items, training.batch, rng)]
    plan = plan[: training.max_steps or len(plan)]
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=training.learning_rate, weight_decay=0.01)
    warmup = max(1, round(len(plan) * training.warmup_share))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (len(plan) - step) / (len(plan) - warmup + 1))))
    checkpoint = Checkpoint(work / f"checkpoint-rank{training.adapter_rank}.pt",
                            f"{data_hash}:{replace(training, threads=0, checkpoint_every=0)}:{len(plan)}")
    done, losses = checkpoint.restore(model, optimiser, schedule)
    if done:
        print(f"resuming from step {done} of {len(plan)} ({checkpoint.path})")

    def save(steps: int) -> dict:
        summary = {
            "questions": len(questions), "unanswerable_questions": sum(not q.answer for q in questions),
            "windows": len(examples), "windows_not_here": sum(e.answer_start < 0 for e in examples),
            "windows_by_source": {s: sum(e.source == s for e in examples) for s in sorted({e.source for e in examples})},
            "pieces": len(items), "steps": steps, "of_steps": len(plan),
            "first_loss": round(float(np.mean(losses[:50])), 3), "last_loss": round(float(np.mean(losses[-50:])), 3),
            "prepare_seconds": round(prepared), "train_seconds": round(time.perf_counter() - began - prepared),
            "threads": torch.get_num_threads(), "device": device.type,
        }
        save_reader(model.shipped_state(), output, ReaderManifest(
            base_model=BASE_MODEL, base_package=BASE_PACKAGE, base_version=metadata.version(BASE_PACKAGE),
            layers=model.encoder.config.num_hidden_layers, max_tokens=training.max_tokens, window_chars=WINDOW_CHARS,
            training_data_sha256=data_hash,
            training={**training.__dict__, "files": [path.name for path in train_files],
                      "passages": [settings.chunk_size, settings.chunk_overlap], **summary},
            figures={},
        ))
        return summary

    bar = tqdm(plan[done:], desc="training", unit="batch", initial=done, total=len(plan), mininterval=30)
    for step, batch in enumerate(bar, start=done + 1):
        ids, mask, starts, ends = (tensor.to(device) for tensor in collate(batch))
        start_logits, end_logits, answerable = model(ids, mask)
        start_logits = start_logits.masked_fill(mask == 0, -1e4)
        end_logits = end_logits.masked_fill(mask == 0, -1e4)
        loss = (functional.cross_entropy(start_logits, starts) + functional.cross_entropy(end_logits, ends)) / 2 \
            + functional.binary_cross_entropy_with_logits(answerable, (starts > 0).float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if step % training.checkpoint_every == 0 and step < len(plan):
            checkpoint.write(step, losses, model, optimiser, schedule)
    model.to("cpu").eval()
    return save(len(plan))


def training_data_sha256(train_files: list[Path]) -> str:
    """What the manifest records of the training files: the sha256 of their sha256s, in order."""
    return hashlib.sha256(b"".join(hashlib.sha256(path.read_bytes()).digest() for path in train_files)).hexdigest()


def prepared_examples(settings: Settings, train_files: list[Path], work: Path, training: TrainingSettings,
                      data_hash: str) -> tuple[list[TrainQuestion], list[WindowExample]]:
    """The questions and their windows, from ``work/examples.json`` when an earlier run of the
    same data and settings wrote it."""
    cache = work / "examples.json"
    key = f"{data_hash}:{training.limit}:{training.negative_share}:{training.seed}:{settings.chunk_size}:{settings.chunk_overlap}"
    questions = write_training_corpus(train_files, work / "corpus", training.limit)
    if cache.exists() and (saved := json.loads(cache.read_text("utf-8")))["key"] == key:
        return questions, [WindowExample(**e) for e in saved["examples"]]
    examples = training_windows(work / "corpus", questions, settings.chunk_size, settings.chunk_overlap, training.negative_share, training.seed)
    cache.write_text(json.dumps({"key": key, "examples": [e.__dict__ for e in examples]}, ensure_ascii=False), "utf-8")
    return questions, examples


@dataclass(frozen=True)
class Checkpoint:
    """The trainable weights, optimiser and schedule of a run so far, to resume it; ``run``
    names the data, settings and plan, so that another run never resumes from it."""

    path: Path
    run: str

    def write(self, step: int, losses: list[float], model, optimiser, schedule) -> None:
        import torch

        trainable = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
        state = {"run": self.run, "step": step, "losses": losses, "optimiser": optimiser.state_dict(), "schedule": schedule.state_dict(),
                 "weights": {name: value for name, value in model.state_dict().items() if name in trainable},
                 "rng": torch.get_rng_state()}
        torch.save(state, self.path.with_suffix(".tmp"))
        self.path.with_suffix(".tmp").replace(self.path)

    def restore(self, model, optimiser, schedule) -> tuple[int, list[float]]:
        """The steps done and their losses (0 and none without a checkpoint of this run)."""
        import torch

        if not self.path.exists():
            return 0, []
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state["run"] != self.run:
            return 0, []
        model.load_state_dict(state["weights"], strict=False)
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        return state["step"], state["losses"]


def save_reader(state: dict, output: Path, manifest: ReaderManifest) -> None:
    """The reader's layers and heads (int8, ``qa.store.reader_weights``) and its manifest, into ``output``."""
    from safetensors.numpy import save_file

    output.mkdir(parents=True, exist_ok=True)
    save_file(pack({name: value.numpy() for name, value in state.items()}), str(output / WEIGHTS))
    (output / MANIFEST).write_text(json.dumps(manifest.__dict__, indent=1, ensure_ascii=False) + "\n", "utf-8")
