"""Command line: ``python -m qa build | status | ask | chat | serve | eval | bench | train-selector | train-reader
| train-confidence | train-carry``. A thin layer over qa.engine."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from qa.answer.question import QuestionError
from qa.config import Settings, index_location
from qa.locations import PACKAGE_DIR
from qa.store.contract import IndexUnusableError
from qa.store.model import ModelLoadError
from qa.tools.shapes import answer_json, format_answer, format_status, status_json
from qa.train.reader import TrainingSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citeqa", description="Extractive answers with citations from a corpus.")
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: corpus/, or QA_CORPUS)")
    parser.add_argument("--index", type=index_location, help="index folder, or a postgresql:// URL (default: index/, or QA_INDEX)")
    parser.add_argument("--model", help="embedding model: bundled default, a local folder, or a hub name (QA_MODEL)")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the index from the corpus (incrementally)")
    build.add_argument("--full", action="store_true", help="embed every passage again")
    status = commands.add_parser("status", help="what the index holds and whether it is stale")
    status.add_argument("--json", action="store_true")
    ask = commands.add_parser("ask", help="answer questions from the index")
    ask.add_argument("questions", nargs="+")
    ask.add_argument("-k", type=int, help="number of passages (default 3)")
    ask.add_argument("--json", action="store_true", help="one JSON object per question and line")
    ask.add_argument("--article", action="append", metavar="TITLE", help="only this article (title or file name); repeatable")
    ask.add_argument("--explain", action="store_true", help="with --json: why each passage was shown (its terms, dense and BM25 ranks, reader)")
    ask.add_argument("--conversation", action="store_true", help="the questions are one conversation, in order: each is read after those before it")
    chat_help = "start the chat in the browser (streamlit run); other options go to streamlit, e.g. --server.port 8502"
    chat = commands.add_parser("chat", help=chat_help, description=chat_help)
    chat.add_argument("--allow-uploads", action="store_true", help="show the controls that add and remove documents and rebuild (QA_CHAT_UPLOADS)")
    serve = commands.add_parser("serve", help="answer over HTTP: a JSON API (docs/api.md)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="processes, each with its own engine (default 1)")
    serve.add_argument("--token-file", type=Path, help="a file holding the token that writing (upload, delete, rebuild, feedback) "
                                                       "needs, sent as `Authorization: Bearer TOKEN` (QA_API_TOKEN_FILE)")
    serve.add_argument("--private", action="store_true", help="reading needs the token too (QA_API_PRIVATE)")
    evaluate = commands.add_parser("eval", help="measure answers against a question file")
    evaluate.add_argument("file", type=Path, help="questions (JSON lines like eval/dev.jsonl)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--from-feedback", action="store_true", help="FILE is the chat's feedback.jsonl: replay its 👍 votes")
    evaluate.add_argument("--save", type=Path, metavar="RUN", help="also write each question's outcome to RUN (JSON lines)")
    evaluate.add_argument("--compare", type=Path, metavar="RUN", help="list the questions that got worse (or better) since RUN")
    evaluate.add_argument("--fold", type=_fold, metavar="I/N", help="a dialogue file: only every N-th dialogue, from the I-th (held-out figures)")
    bench = commands.add_parser("bench", help="time model load, build and each step of answering; index size and memory")
    bench.add_argument("--passages", type=int, default=10_000, help="size of the synthetic corpus (0: real corpus only)")
    bench.add_argument("--seed", type=int, default=0, help="seed of the synthetic corpus")
    bench.add_argument("--rounds", type=int, default=3, help="passes over the dev questions timed, after one warm-up")
    bench.add_argument("--compare-ann", action="store_true", help="also measure HNSW and IVF-PQ settings on the synthetic vectors")
    bench.add_argument("--ef-search", type=_int_list, default=(), metavar="N,N,…",
                       help="also measure the synthetic HNSW index at these efSearch values (recall, search time)")
    bench.add_argument("--keep", type=Path, metavar="FOLDER",
                       help="keep the synthetic index in FOLDER, or measure the one kept there without rebuilding it")
    bench.add_argument("--json", action="store_true", help="one JSON object")
    train = commands.add_parser("train-selector", help="train the answering-sentence model on questions with known answers")
    train.add_argument("file", type=Path, help="questions (JSON lines with answer and doc, like piaf-dev's)")
    train.add_argument("--also", nargs=2, action="append", default=[], type=Path, metavar=("FILE", "INDEX"),
                       help="more questions, on the corpus of another index (repeatable)")
    train.add_argument("--output", type=Path, help="where to write the model (default: qa/models/sentence_model.json, or with --reader "
                                                  "the reader's choice_model.json)")
    train.add_argument("--reader", action="store_true", help="train the choice over the sentence model's and the reader's signals")
    reader = commands.add_parser("train-reader", help="train the extractive reader on a SQuAD-format file (PIAF-train)")
    reader.add_argument("files", type=Path, nargs="+", help="training questions, SQuAD JSON: the first file's paragraphs make the corpus, "
                        "the others (SQuAD 2.0, like ../shared/train/piaf-train-extra.json) add questions to them")
    reader.add_argument("--work", type=Path, default=Path(".cache/reader-training"), help="folder for its corpus and index")
    reader.add_argument("--output", type=Path, help="where to write the reader (default: qa/models/reader/)")
    for name, default in TrainingSettings().__dict__.items():
        reader.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    carry = commands.add_parser("train-carry", help="train which earlier words a follow-up question carries, on dialogue files")
    carry.add_argument("files", type=Path, nargs="+", help="dialogue files (JSON lines with dialogue, turn, question, standalone, "
                                                         "answer, like ../shared/eval/conversations/*.jsonl)")
    carry.add_argument("--leave-out", type=int, choices=(1, 2), help="train without this fold of 2 (to measure it with `qa eval --fold I/2`)")
    carry.add_argument("--output", type=Path, help="where to write the model (default: qa/models/carry_model.json)")
    confidence = commands.add_parser("train-confidence", help="train when to abstain and the confidence shown, on questions with known answers")
    confidence.add_argument("file", type=Path, help="questions of many articles (JSON lines with doc, like piaf-dev's)")
    confidence.add_argument("--cross-article", action="store_true", help="also ask each question of the other articles only")
    confidence.add_argument("--answer-removed", action="store_true",
                            help="also ask each question without the passages that hold its answer")
    confidence.add_argument("--also", nargs=2, action="append", default=[], type=Path, metavar=("FILE", "INDEX"),
                            help="more questions, on the corpus of another index (repeatable)")
    confidence.add_argument("--output", type=Path, help="where to write the models (default: the reader's confidence_model.json)")
    args, streamlit_options = parser.parse_known_args(argv)  # only `chat` takes options of another program
    if streamlit_options and args.command != "chat":
        parser.error(f"unrecognized arguments: {' '.join(streamlit_options)}")
    args.streamlit_options = streamlit_options
    settings = Settings.from_env(corpus=args.corpus, index=args.index, model=args.model)
    try:
        return {"build": _build, "status": _status, "ask": _ask, "chat": _chat, "serve": _serve, "eval": _eval, "bench": _bench, "train-selector": _train,
                "train-reader": _train_reader, "train-confidence": _train_confidence, "train-carry": _train_carry}[args.command](settings, args)
    except (IndexUnusableError, ModelLoadError, FileNotFoundError, ValueError) as error:
        print(f"error: {as_invoked(str(error))}", file=sys.stderr)
        return 1


def as_invoked(message: str) -> str:
    """``message`` with the commands it names written as this program was started: ``citeqa …``
    when run as ``citeqa``, ``python -m qa …`` otherwise."""
    return message if Path(sys.argv[0]).name != "citeqa" else message.replace("`python -m qa ", "`citeqa ")


def _build(settings: Settings, args: argparse.Namespace) -> int:
    from qa.engine import build, index_status

    if index_status(settings).building:
        print("another build of this index is running; waiting for it to finish…", file=sys.stderr)
    report = build(settings, progress=_progress_bar, full=args.full)
    for message in report.skipped:
        print(f"warning: skipped {message}", file=sys.stderr)
    print(
        f"indexed {report.documents} document(s), {report.passages} passages into {report.folder} "
        f"in {report.seconds:.1f} s ({report.embedded} texts embedded, {report.reused} reused)"
    )
    return 0


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from qa.engine import index_status

    status = index_status(settings)
    if args.json:
        print(json.dumps(status_json(status), ensure_ascii=False))
    else:
        print(as_invoked(format_status(status)))
    return 0 if status.problem is None else 1


def _ask(settings: Settings, args: argparse.Namespace) -> int:
    engine = _engine_built_on_first_use(settings)
    reasons = engine.stale_reasons()
    if reasons:
        print(as_invoked(f"warning: the index is stale ({', '.join(reasons)}); rebuild with `python -m qa build`"), file=sys.stderr)
    articles = engine.articles_named(args.article) if args.article else None
    status, history = 0, []
    for question in args.questions:
        try:
            answer = engine.ask(question, args.k, articles, history if args.conversation else (), args.explain)
        except QuestionError as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        history.append(answer.as_turn())
        print(json.dumps(answer_json(answer), ensure_ascii=False) if args.json else format_answer(answer))
    return status


def _engine_built_on_first_use(settings: Settings):
    """The engine; an index folder that does not exist yet (the first question after installing)
    is built first from the corpus, with a progress line, as the chat does."""
    from qa.engine import build, open_engine, uses_database
    from qa.store.contract import MissingIndexError
    from qa.store.model import load_encoder

    embedder = load_encoder(settings)
    try:
        return open_engine(settings, embedder)
    except MissingIndexError:
        if uses_database(settings):
            raise
    print(f"no index yet in {settings.index}: building it from {settings.corpus} (first use)…", file=sys.stderr)
    report = build(settings, embedder, progress=_progress_bar)
    for message in report.skipped:
        print(f"warning: skipped {message}", file=sys.stderr)
    return open_engine(settings, embedder)


def _chat(settings: Settings, args: argparse.Namespace) -> int:
    """Becomes ``streamlit run qa/chat_app.py`` (this process replaced), with this command's corpus,
    index and model (and, with --allow-uploads, the upload controls)."""
    environment = {**os.environ, **settings.environment(), **({"QA_CHAT_UPLOADS": "1"} if args.allow_uploads else {})}
    os.execve(sys.executable, [sys.executable, "-m", "streamlit", "run", str(PACKAGE_DIR / "chat_app.py"), *args.streamlit_options], environment)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from qa.tools.serve import serve

    settings = replace(settings, api_token_file=args.token_file or settings.api_token_file, api_private=args.private or settings.api_private)
    serve(settings, args.host, args.port, args.workers)
    return 0


def _eval(settings: Settings, args: argparse.Namespace) -> int:
    from qa.engine import open_engine
    from qa.tools.evaluate import (case_from_row, compare_runs, evaluate, evaluate_dialogues, format_report, in_fold, is_dialogue_file,
                                   read_cases, read_run, write_run)
    from qa.tools.feedback import cases_from_feedback

    cases = [case_from_row(row) for row in cases_from_feedback(args.file)] if args.from_feedback else read_cases(args.file)
    dialogues = bool(cases) and is_dialogue_file(cases)
    if args.fold and not dialogues:
        raise ValueError(f"--fold splits dialogues, and {args.file} is not a dialogue file (dialogue, turn, standalone)")
    if args.fold:
        cases = in_fold(cases, *args.fold)
    if not cases:
        raise ValueError(f"{args.file} holds no question to evaluate")
    report, outcomes = (evaluate_dialogues if dialogues else evaluate)(open_engine(settings), cases)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    if args.save:
        write_run(args.save, outcomes)
    if args.compare:
        print(compare_runs(read_run(args.compare), outcomes), file=sys.stderr if args.json else sys.stdout)
    return 0


def _train(settings: Settings, args: argparse.Namespace) -> int:
    from qa.train.sentence import train_selector

    question_sets = [(args.file, str(settings.index)), *((file, str(index)) for file, index in args.also)]
    train_selector(settings, question_sets, args.reader, args.output)
    return 0


def _train_reader(settings: Settings, args: argparse.Namespace) -> int:
    from qa.answer.reader import READER_DIR
    from qa.train.reader import train_reader

    training = TrainingSettings(**{name: getattr(args, name) for name in TrainingSettings().__dict__})
    summary = train_reader(settings, args.files, args.work, training, args.output or READER_DIR)
    print(json.dumps(summary))
    return 0


def _train_confidence(settings: Settings, args: argparse.Namespace) -> int:
    from qa.train.confidence import train_confidence

    also = [(file, str(index)) for file, index in args.also]
    train_confidence(settings, args.file, args.cross_article, args.answer_removed, also, args.output)
    return 0


def _train_carry(settings: Settings, args: argparse.Namespace) -> int:
    from qa.train.conversation import train_carry

    summary = train_carry(args.files, args.output, args.leave_out)
    print(json.dumps({key: summary[key] for key in ("threshold", "left_out_fold", "held_out_carried_words")}, indent=1))
    return 0


def _fold(text: str) -> tuple[int, int]:
    """``I/N`` (the I-th of N folds, 1 ≤ I ≤ N) as (I, N)."""
    try:
        fold, folds = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 2/2") from None
    if not 1 <= fold <= folds:
        raise argparse.ArgumentTypeError(f"{text!r}: the fold I must be between 1 and N")
    return fold, folds


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from qa.tools.bench import run_bench
    from qa.tools.bench_report import format_report

    report = run_bench(settings, args.passages, args.seed, args.compare_ann, args.ef_search, args.keep, args.rounds)
    print(json.dumps(asdict(report), ensure_ascii=False) if args.json else format_report(report))
    return 0


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    end = "\n" if done == total else ""
    print(f"\rembedding [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end=end, file=sys.stderr, flush=True)
