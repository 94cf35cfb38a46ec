"""Training the reader (``python -m qa train-reader``): PIAF-train questions, read in windows
shaped like the product's.

Each training article becomes a corpus file; citeqa indexes them and answers every question
with its own retrieval and sentence model. The windows it would read (``qa.reader.reading_windows``)
are the examples: those holding the answer teach its span, the others teach "not here" (hard
negatives: text that retrieval ranks high for the question). When none holds the answer, the
window around the answer's sentence is added; so is, for some questions, the whole 400 / 200
character passage holding it (the short-passage setting). LoRA adapters on the first layers of
the bundled e5 and a new span head are trained; only they are saved, with a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path

import numpy as np

from qa.answer.candidates import DEPTH, FEATURES, find_candidates
from qa.answer.ranking import SENTENCE_MODEL, SentenceModel
from qa.answer.reader import BASE_MODEL, BASE_PACKAGE, MANIFEST, READER_DIR, ReaderManifest, base_reader, reader_tokenizer
from qa.answer.reading import windows_to_read
from qa.answer.windows import WINDOW_CHARS, window_around
from qa.config import Settings
from qa.engine import build, open_retriever
from qa.ingest.corpus import read_corpus
from qa.ingest.passages import Passage, passages_for
from qa.store.model import ensure_bundled_model, load_embedder

LORA_TARGETS = ["query", "key", "value", "dense"]
SHORT_PASSAGES = (400, 200)  # the many-article setting, for the extra answer windows


@dataclass(frozen=True)
class TrainingSettings:
    layers: int = 8
    epochs: int = 1
    batch: int = 16
    learning_rate: float = 5e-4
    lora_rank: int = 16
    lora_alpha: int = 32
    max_tokens: int = 192
    short_passage_share: float = 0.3  # questions that also get their 400 / 200 passage as a window
    negatives: int = 2  # windows without the answer kept per question: the ones ranked best
    checkpoint_every: int = 200  # steps between two saves of the reader so far
    seed: int = 0
    limit: int = 0  # at most this many questions (0: all), for a quick run


@dataclass(frozen=True)
class TrainQuestion:
    doc_id: str
    question: str
    answer: str
    answer_start: int  # in the article's corpus file


@dataclass(frozen=True)
class WindowExample:
    question: str
    text: str
    answer_start: int  # in ``text``; -1: the window does not hold the answer
    answer: str


def write_training_corpus(train_file: Path, folder: Path, limit: int = 0) -> list[TrainQuestion]:
    """One Markdown file per article of a SQuAD-format file (``# Title``, then its paragraphs),
    and its questions with each answer's offset in that file."""
    folder.mkdir(parents=True, exist_ok=True)
    questions: list[TrainQuestion] = []
    names: set[str] = set()
    for article in json.loads(train_file.read_text("utf-8"))["data"]:
        doc_id = _unique(_slug(article["title"]), names)
        text = f"# {article['title']}\n\n"
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answer = qa["answers"][0]
                if context[answer["answer_start"]:].startswith(answer["text"]):
                    questions.append(TrainQuestion(doc_id, qa["question"], answer["text"], len(text) + answer["answer_start"]))
            text += context + "\n\n"
        (folder / f"{doc_id}.md").write_text(text, "utf-8")
        if limit and len(questions) >= limit:
            break
    return questions[:limit] if limit else questions


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title).strip("-")[:60] or "article"


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    taken.add(candidate)
    return candidate


def window_example(question: TrainQuestion, passage: Passage, start: int, end: int) -> WindowExample:
    """A window of a passage as an example: the answer's own occurrence if the window covers
    it, else another occurrence of the answer's text in it, else "not here"."""
    text = passage.text[start:end]
    at = question.answer_start - passage.start - start
    if not (0 <= at and at + len(question.answer) <= len(text) and text[at:].startswith(question.answer)):
        at = text.find(question.answer)
    return WindowExample(question.question, text, at, question.answer)


def sentence_holding(passage: Passage, offset: int) -> int | None:
    """The index of the passage's sentence holding a file offset."""
    local = offset - passage.start
    return next((i for i, (a, b) in enumerate(passage.sentences) if a <= local < b), None)


def examples_for(settings: Settings, questions: list[TrainQuestion], training: TrainingSettings, embedder=None) -> list[WindowExample]:
    """The windows citeqa reads for each question on its own index of the training corpus, plus
    the answer's window when retrieval missed it and, for a share of questions, the answer's
    short passage."""
    build(settings, embedder)
    retriever = open_retriever(settings, embedder)
    sentence_model = SentenceModel.load(SENTENCE_MODEL, FEATURES)
    corpus = read_corpus(settings.corpus)
    passages = {doc.doc_id: passages_for(doc, settings.chunk_size, settings.chunk_overlap) for doc in corpus.documents}
    short = {doc.doc_id: passages_for(doc, *SHORT_PASSAGES) for doc in corpus.documents}
    rng = random.Random(training.seed)
    examples: list[WindowExample] = []
    for question in _progress(questions, "windows"):
        retrieval = retriever.search(question.question, DEPTH)
        hits = [h.passage for h in retrieval.hits]
        windows = windows_to_read(retrieval, find_candidates(retrieval, sentence_model), settings.read_windows)
        read = [window_example(question, hits[w.hit], w.start, w.end) for w in windows]
        negatives = [e for e in read if e.answer_start < 0][training.negatives :]
        read = [e for e in read if e not in negatives]
        if not any(e.answer_start >= 0 for e in read):
            passage = _holding(passages[question.doc_id], question.answer_start)
            if passage is not None and (sentence := sentence_holding(passage, question.answer_start)) is not None:
                window = window_around(passage, sentence)
                read.append(window_example(question, passage, window.start, window.end))
        if rng.random() < training.short_passage_share and (passage := _holding(short[question.doc_id], question.answer_start)):
            read.append(window_example(question, passage, 0, len(passage.text)))
        examples += read
    return examples


def _holding(passages: list[Passage], offset: int) -> Passage | None:
    return next((p for p in passages if p.start <= offset and offset < p.end), None)


def encode(tokenizer, examples: list[WindowExample], max_tokens: int) -> list[dict]:
    """Token ids and the answer's first and last token (0 and 0: not here, or cut off)."""
    encoded = tokenizer([e.question for e in examples], [e.text for e in examples], truncation="only_second",
                        max_length=max_tokens, return_offsets_mapping=True)
    items = []
    for row, example in enumerate(examples):
        first = last = 0
        if example.answer_start >= 0:
            begin, end = example.answer_start, example.answer_start + len(example.answer)
            in_text = [i for i, s in enumerate(encoded.sequence_ids(row)) if s == 1]
            offsets = encoded["offset_mapping"][row]
            starts = [i for i in in_text if offsets[i][1] > begin]
            ends = [i for i in in_text if offsets[i][0] < end]
            if starts and ends and starts[0] <= ends[-1] and offsets[in_text[-1]][1] >= end:
                first, last = starts[0], ends[-1]
        items.append({"input_ids": encoded["input_ids"][row], "start": first, "end": last})
    return items


def batches(items: list[dict], size: int, rng: random.Random) -> list[list[dict]]:
    """Batches of examples of similar length (less padding), in random order."""
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


def train_reader(settings: Settings, train_file: Path, work: Path, training: TrainingSettings, output: Path = READER_DIR) -> dict:
    """Build the examples, fine-tune, and write the adapters and manifest to ``output``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    random.seed(training.seed)
    np.random.seed(training.seed)
    torch.manual_seed(training.seed)
    began = time.perf_counter()
    questions = write_training_corpus(train_file, work / "corpus", training.limit)
    corpus_settings = replace(settings, corpus=work / "corpus", index=work / f"index-{settings.chunk_size}-{settings.chunk_overlap}")
    examples = examples_for(corpus_settings, questions, training, load_embedder(settings))
    prepared = time.perf_counter() - began
    torch.set_num_threads(os.cpu_count() or 1)  # answering uses one thread (Settings.torch_threads); training, every core
    base_dir = ensure_bundled_model(settings.model_cache)
    tokenizer = reader_tokenizer(base_dir)
    items = encode(tokenizer, examples, training.max_tokens)
    lora = LoraConfig(r=training.lora_rank, lora_alpha=training.lora_alpha, lora_dropout=0.05,
                      target_modules=LORA_TARGETS, modules_to_save=["qa_outputs"])
    model = get_peft_model(base_reader(base_dir, training.layers), lora)
    model.train()
    rng = random.Random(training.seed)
    plan = [batch for _ in range(training.epochs) for batch in batches(items, training.batch, rng)]
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=training.learning_rate, weight_decay=0.01)
    warmup = max(1, len(plan) // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (len(plan) - step) / (len(plan) - warmup + 1))))
    losses: list[float] = []

    def save(steps: int) -> dict:
        summary = {
            "questions": len(questions), "windows": len(items), "windows_with_answer": sum(i["start"] > 0 for i in items),
            "steps": steps, "of_steps": len(plan), "first_loss": round(float(np.mean(losses[:50])), 3),
            "last_loss": round(float(np.mean(losses[-50:])), 3), "prepare_seconds": round(prepared),
            "train_seconds": round(time.perf_counter() - began - prepared), "threads": torch.get_num_threads(),
        }
        save_reader(model, output, ReaderManifest(
            base_model=BASE_MODEL, base_package=BASE_PACKAGE, base_version=metadata.version(BASE_PACKAGE),
            layers=training.layers, max_tokens=training.max_tokens, window_chars=WINDOW_CHARS,
            training_data_sha256=hashlib.sha256(train_file.read_bytes()).hexdigest(),
            training={**training.__dict__, "passages": [settings.chunk_size, settings.chunk_overlap], "lora_targets": LORA_TARGETS, **summary},
            figures={},
        ))
        return summary

    bar = tqdm(plan, desc="training", unit="batch")
    for step, (ids, mask, starts, ends) in enumerate(map(collate, bar), start=1):
        result = model(input_ids=ids, attention_mask=mask, start_positions=starts, end_positions=ends)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(float(result.loss))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if step % training.checkpoint_every == 0 and step < len(plan):
            save(step)
    return save(len(plan))


def save_reader(model, output: Path, manifest: ReaderManifest) -> None:
    """The adapters, the span head and the manifest, into ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    model.peft_config["default"].base_model_name_or_path = BASE_MODEL  # not this machine's cache folder
    model.save_pretrained(str(output))
    (output / "README.md").unlink(missing_ok=True)  # peft's blank model card; the manifest says what this is
    (output / MANIFEST).write_text(json.dumps(manifest.__dict__, indent=1, ensure_ascii=False) + "\n", "utf-8")


def _progress(items: list, label: str):
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="question")
