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
from qa.store.lexical import terms
from qa.store.model import ensure_bundled_model, load_embedder

LORA_TARGETS = ["query", "key", "value", "dense"]
SHORT_PASSAGES = (400, 200)  # the many-article setting, for the extra answer windows


@dataclass(frozen=True)
class TrainingSettings:
    layers: int = 6
    epochs: int = 1
    batch: int = 16
    learning_rate: float = 1e-3
    lora_rank: int = 16
    lora_alpha: int = 32
    max_tokens: int = 192
    short_passage_share: float = 0.3  # questions that also get their 400 / 200 passage as a window
    negatives: int = 2  # windows without the answer kept per question: the ones ranked best
    unanswerable_windows: int = 2  # windows of its own paragraph for a question the article does not answer
    checkpoint_every: int = 200  # steps between two saves of the reader so far
    seed: int = 0
    limit: int = 0  # at most this many questions (0: all), for a quick run
    max_steps: int = 0  # stop after this many batches, a random sample of all (0: every batch), to compare settings quickly
    threads: int = 0  # torch threads on a CPU (0: one per core)


@dataclass(frozen=True)
class TrainQuestion:
    doc_id: str
    question: str
    answer: str  # "" when the article does not answer it
    answer_start: int  # in the article's corpus file; -1: unanswerable
    paragraph_start: int  # where its paragraph begins in that file


@dataclass(frozen=True)
class WindowExample:
    question: str
    text: str
    answer_start: int  # in ``text``; -1: the window does not hold the answer
    answer: str


def write_training_corpus(train_files: list[Path], folder: Path, limit: int = 0) -> list[TrainQuestion]:
    """One Markdown file per article of SQuAD-format files (``# Title``, then its paragraphs, in
    the first file's order), and their questions with each answer's offset in that file. Files
    after the first add questions to its paragraphs (SQuAD 2.0: ``is_impossible`` questions have
    no answer, their ``answer_start`` is -1)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [json.loads(path.read_text("utf-8"))["data"] for path in train_files]
    extra = {(article["title"], paragraph["context"]): paragraph["qas"]
             for data in files[1:] for article in data for paragraph in article["paragraphs"]}
    questions: list[TrainQuestion] = []
    names: set[str] = set()
    for article in files[0]:
        doc_id = _unique(_slug(article["title"]), names)
        text = f"# {article['title']}\n\n"
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"] + extra.get((article["title"], context), []):
                if qa.get("is_impossible"):
                    questions.append(TrainQuestion(doc_id, qa["question"], "", -1, len(text)))
                    continue
                answer = qa["answers"][0]
                if context[answer["answer_start"]:].startswith(answer["text"]):
                    questions.append(TrainQuestion(doc_id, qa["question"], answer["text"], len(text) + answer["answer_start"], len(text)))
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
    if not question.answer:
        return WindowExample(question.question, text, -1, "")
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
        offset = question.answer_start if question.answer else question.paragraph_start  # its answer, or its paragraph
        own = _holding(passages[question.doc_id], offset)
        if not question.answer and own is not None:
            read += [e for e in own_paragraph_examples(question, own, training.unanswerable_windows) if e not in read]
        elif not any(e.answer_start >= 0 for e in read):
            if own is not None and (sentence := sentence_holding(own, question.answer_start)) is not None:
                window = window_around(own, sentence)
                read.append(window_example(question, own, window.start, window.end))
        if rng.random() < training.short_passage_share and (passage := _holding(short[question.doc_id], offset)):
            read.append(window_example(question, passage, 0, len(passage.text)))
        examples += read
    return examples


def own_paragraph_examples(question: TrainQuestion, passage: Passage, count: int) -> list[WindowExample]:
    """"Not here" windows of an unanswerable question's own passage: around the ``count``
    sentences sharing most of its terms, the text a reader is most tempted to answer from."""
    wanted = set(terms(question.question))
    overlap = [len(wanted & set(terms(passage.text[a:b]))) for a, b in passage.sentences]
    best = sorted(range(len(overlap)), key=lambda i: -overlap[i])[:count]
    windows = {window_around(passage, i) for i in best}
    return [window_example(question, passage, w.start, w.end) for w in sorted(windows, key=lambda w: w.start)]


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


def train_reader(settings: Settings, train_files: list[Path], work: Path, training: TrainingSettings, output: Path = READER_DIR) -> dict:
    """Build the examples (or reuse those ``work`` holds), fine-tune (from ``work``'s checkpoint
    when a run was stopped), and write the adapters and manifest to ``output``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

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
    items = encode(reader_tokenizer(base_dir), examples, training.max_tokens)
    lora = LoraConfig(r=training.lora_rank, lora_alpha=training.lora_alpha, lora_dropout=0.05,
                      target_modules=LORA_TARGETS, modules_to_save=["qa_outputs"])
    model = get_peft_model(base_reader(base_dir, training.layers), lora).to(device)
    model.train()
    rng = random.Random(training.seed)
    plan = [batch for _ in range(training.epochs) for batch in batches(items, training.batch, rng)]
    plan = plan[: training.max_steps or len(plan)]
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=training.learning_rate, weight_decay=0.01)
    warmup = max(1, len(plan) // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: min((step + 1) / warmup, max(0.0, (len(plan) - step) / (len(plan) - warmup + 1))))
    checkpoint = Checkpoint(work / "checkpoint.pt", f"{data_hash}:{replace(training, threads=0, checkpoint_every=0)}:{len(plan)}")
    done, losses = checkpoint.restore(model, optimiser, schedule)
    if done:
        print(f"resuming from step {done} of {len(plan)} ({checkpoint.path})")

    def save(steps: int) -> dict:
        summary = {
            "questions": len(questions), "unanswerable_questions": sum(not q.answer for q in questions),
            "windows": len(items), "windows_with_answer": sum(i["start"] > 0 for i in items),
            "steps": steps, "of_steps": len(plan), "first_loss": round(float(np.mean(losses[:50])), 3),
            "last_loss": round(float(np.mean(losses[-50:])), 3), "prepare_seconds": round(prepared),
            "train_seconds": round(time.perf_counter() - began - prepared), "threads": torch.get_num_threads(), "device": device.type,
        }
        save_reader(model, output, ReaderManifest(
            base_model=BASE_MODEL, base_package=BASE_PACKAGE, base_version=metadata.version(BASE_PACKAGE),
            layers=training.layers, max_tokens=training.max_tokens, window_chars=WINDOW_CHARS,
            training_data_sha256=data_hash,
            training={**training.__dict__, "files": [path.name for path in train_files], "passages": [settings.chunk_size, settings.chunk_overlap],
                      "read_windows": settings.read_windows, "lora_targets": LORA_TARGETS, **summary},
            figures={},
        ))
        return summary

    bar = tqdm(plan[done:], desc="training", unit="batch", initial=done, total=len(plan))
    for step, batch in enumerate(bar, start=done + 1):
        ids, mask, starts, ends = (tensor.to(device) for tensor in collate(batch))
        result = model(input_ids=ids, attention_mask=mask, start_positions=starts, end_positions=ends)
        result.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(float(result.loss.detach()))
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if step % training.checkpoint_every == 0 and step < len(plan):
            checkpoint.write(step, losses, model, optimiser, schedule)
            save(step)
    model.to("cpu")
    return save(len(plan))


def training_data_sha256(train_files: list[Path]) -> str:
    """What the manifest records of the training files: the sha256 of their sha256s, in order."""
    return hashlib.sha256(b"".join(hashlib.sha256(path.read_bytes()).digest() for path in train_files)).hexdigest()


def prepared_examples(settings: Settings, train_files: list[Path], work: Path, training: TrainingSettings,
                      data_hash: str) -> tuple[list[TrainQuestion], list[WindowExample]]:
    """The questions and their window examples, from ``work/examples.json`` when an earlier run
    of the same data and settings wrote it."""
    cache = work / "examples.json"
    key = f"{data_hash}:{training.limit}:{training.negatives}:{training.unanswerable_windows}:{training.short_passage_share}:" \
          f"{training.seed}:{settings.chunk_size}:{settings.chunk_overlap}:{settings.read_windows}"
    questions = write_training_corpus(train_files, work / "corpus", training.limit)
    if cache.exists() and (saved := json.loads(cache.read_text("utf-8")))["key"] == key:
        return questions, [WindowExample(**e) for e in saved["examples"]]
    corpus_settings = replace(settings, corpus=work / "corpus", index=work / f"index-{settings.chunk_size}-{settings.chunk_overlap}")
    examples = examples_for(corpus_settings, questions, training, load_embedder(settings))
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
