"""The llama.cpp backend: real GGUF models through llama-cpp-python (the ``llama`` extra).

- **Lazy loading.**  Nothing is loaded until a model is asked for; ``llama_cpp`` itself is imported
  then too (``MissingDependencyError`` names the extra when it is absent).
- **Instances and concurrency.**  A llama.cpp context is not safe to share between threads, so each
  request checks out one instance of its model for its whole generation (streams included) and gives
  it back in a ``finally``.  A model has up to ``concurrency`` instances (each with its own KV cache);
  a request that finds them all busy waits, until its deadline at most (``BackendTimeoutError``).
  Embedding needs a context built with ``embedding=True``, so embed requests use instances of their
  own (mean pooling, unit-length vectors, as the OpenAI API returns them).
- **Memory budget.**  Each instance counts ``memory_mb`` (default: the GGUF file's size).  Loading one
  more instance than the budget allows first unloads idle instances, least recently used first; when
  only busy ones are left it waits for one to be returned.  A model that alone exceeds the budget
  fails with a ``BackendError`` (the router falls back to another one).
- **A file replaced or rewritten while loaded.**  llama.cpp memory-maps the weights (``use_mmap``,
  on by default): a GGUF truncated or rewritten *in place* under a loaded model makes the next read
  of the mapping fault (SIGBUS), which kills the whole process.  So before each use the file's
  identity (device, inode, size, modification time) is compared with the one loaded: an idle
  instance of a changed file is unloaded and the model loaded again from the new file; a busy one is
  unloaded when it is given back.  What no check can cover is a file cut short *during* a generation:
  replace models by writing a new file and renaming it over the old one (the loaded mapping keeps the
  old inode alive), or set ``llama_options = { use_mmap = false }`` to read the weights into memory
  (slower loads, no page sharing, no fault).
- **Permanent failures.**  A file that cannot be loaded (corrupt, missing) or a model that alone needs
  more than the whole memory budget raises ``ModelUnavailableError`` and stays out of the pool
  (``unavailable_models()``, shown in ``/health``) until its file changes: no request spends a
  fallback hop on it meanwhile.
- **Load penalty.**  ``loaded_models(mode)`` tells the serving layer which models are ready; it adds
  ``load_ms`` (the calibrated load time) to the cost and latency of the others.
- **Prompt formats.**  ``chat_template`` (pool field): absent or "auto" uses the GGUF's own chat
  template (``tokenizer.chat_template``) and a plain ``User:``/``Assistant:`` transcript for a base
  model that has none (llama-cpp-python would otherwise fall back to the Llama-2 format, which a base
  model has never seen); "plain" forces the transcript; a Jinja template in the pool replaces the
  GGUF's; any other string is a llama-cpp-python ``chat_format`` name (then prompt token counts of
  streamed answers are not known).
- **Exact context fit.**  ``count_tokens`` uses a vocabulary-only load of the GGUF (cheap), so the
  serving layer can route a prompt away from a model whose context it does not fit before loading it.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

from .backends import BackendBase, Finished, GenerationRequest, TextDelta
from ..errors import (BackendError, BackendTimeoutError, ContextOverflowError, ContractError, MissingDependencyError,
                     ModelUnavailableError, ZetaError)
from ..pool import ModelInfo, resolve_gguf
from ..records import CLIENT_ERROR_PREFIX

__all__ = ["LlamaBackend", "plain_chat_prompt", "PLAIN_STOP", "import_llama_cpp"]

DEFAULT_N_CTX = 4096
PLAIN_STOP = ("\nUser:", "\nAssistant:", "\nSystem:")
_CHAT_OVERHEAD_TOKENS = 8  # per message: role markers and separators of a typical chat template


def import_llama_cpp():
    """``llama_cpp``, or an actionable error when the ``llama`` extra is not installed."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingDependencyError(
            f"the llama.cpp backend needs llama-cpp-python ({exc}): pip install 'zeta-router[llama]' "
            "(it builds from source; CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" gives a portable build)") from None
    return llama_cpp


def plain_chat_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """A transcript a base model can continue: the system text, then ``User:``/``Assistant:`` turns."""
    out = []
    for m in messages:
        role, content = m.get("role", "user"), m.get("content", "")
        if role == "system" or role == "developer":
            out.append(f"{content}\n\n")
        elif role == "assistant":
            out.append(f"Assistant: {content}\n")
        else:
            out.append(f"User: {content}\n")
    out.append("Assistant:")
    return "".join(out)


FileId = tuple  # (device, inode, size, mtime_ns) of a GGUF file; None when it is missing


def file_id(path: str) -> FileId | None:
    """What identifies one version of a file: another inode, size or modification time is another file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(eq=False)
class _Instance:
    llm: Any
    key: tuple[str, str]        # (model name, "gen" | "embed")
    memory_mb: float
    busy: bool = True
    last_used: float = 0.0
    file: FileId | None = None  # the identity of the file it was loaded from


@dataclass(eq=False)
class _Format:
    """How one model's chat messages become a prompt."""

    kind: str                   # "jinja" | "plain" | "named"
    formatter: Any = None       # llama_cpp Jinja2ChatFormatter for "jinja"


@dataclass
class _ModelStats:
    loads: int = 0
    unloads: int = 0
    load_failures: int = 0
    last_load_ms: float | None = None
    last_error: str | None = None
    file_changes: int = 0       # times the file was found changed under a loaded instance or vocabulary
    extra: dict = field(default_factory=dict)


def _relay(llm, chunks, text_of, prompt_tokens, load_ms):
    """Stream llama-cpp-python's chunks as TextDelta events, then one Finished.

    Streaming returns no usage: the answer's tokens are counted the way they were produced."""
    pieces, finish = [], "length"
    try:
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = text_of(choice) or ""
            if text:
                pieces.append(text)
                yield TextDelta(text)
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    finally:
        chunks.close()
    out = "".join(pieces)
    completion = len(llm.tokenize(out.encode("utf-8"), add_bos=False, special=True)) if out else 0
    yield Finished(finish, prompt_tokens, completion, None, load_ms)


class LlamaBackend(BackendBase):
    """Serve the models of a pool with llama-cpp-python.

    ``base_dir`` resolves relative ``gguf`` paths (the pool file's folder); ``memory_budget_mb`` caps
    what loaded instances may take (None: no cap); ``default_n_ctx`` is the context of models without
    ``context_length``; ``n_threads`` is passed to every model without its own.
    """

    def __init__(self, pool: Sequence[ModelInfo], *, base_dir: str | os.PathLike | None = None,
                 memory_budget_mb: float | None = None, default_n_ctx: int = DEFAULT_N_CTX,
                 n_threads: int | None = None, verbose: bool = False):
        if memory_budget_mb is not None and not memory_budget_mb > 0:
            raise ContractError("memory_budget_mb", f"must be > 0, got {memory_budget_mb!r}")
        llama_cpp = import_llama_cpp()  # here, so a missing extra shows when the server starts
        self._models: dict[str, ModelInfo] = {}
        self._paths: dict[str, str] = {}
        for m in pool:
            path = resolve_gguf(m, base_dir)
            if path is None:
                raise ContractError(f"{m.name}.gguf", "the llama.cpp backend needs the path of the model's GGUF file")
            if not path.is_file():
                raise ContractError(f"{m.name}.gguf", f"no such file: {path}")
            _check_llama_options(llama_cpp.Llama, m)
            self._models[m.name] = m
            self._paths[m.name] = str(path)
        self.memory_budget_mb = memory_budget_mb
        self.default_n_ctx = default_n_ctx
        self.n_threads = n_threads
        self.verbose = verbose
        self._cond = threading.Condition()
        self._instances: list[_Instance] = []
        self._loading: dict[tuple[str, str], int] = {}
        self._reserved_mb = 0.0                     # memory of instances being loaded right now
        self._formats: dict[str, _Format] = {}
        self._vocab: dict[str, Any] = {}
        self._vocab_lock = threading.Lock()
        self._stats = {name: _ModelStats() for name in self._models}
        self._broken: dict[str, tuple[FileId | None, str]] = {}  # name -> (file identity, why): see unavailable
        self._files: dict[str, FileId | None] = {}               # name -> identity its caches were built from
        self._closed = False

    # -- optional Backend methods -----------------------------------------------------------------
    def loaded_models(self, mode: str) -> frozenset[str]:
        kind = "embed" if mode == "embed" else "gen"
        with self._cond:
            return frozenset(i.key[0] for i in self._instances if i.key[1] == kind)

    def context_window(self, model: ModelInfo) -> int:
        return model.context_length or self.default_n_ctx

    def count_tokens(self, model: ModelInfo, text: str) -> int | None:
        """Exact token count of ``text`` with the model's own tokenizer (a vocabulary-only load)."""
        if model.name not in self._models:
            return None
        self._notice_file(model.name, file_id(self._paths[model.name]))
        vocab = self._vocab_for(model.name)
        return len(vocab.tokenize(text.encode("utf-8", errors="replace"), add_bos=True, special=False))

    def unavailable_models(self) -> dict[str, str]:
        """Models that failed for good (name -> why), until their file changes: then they are tried again."""
        with self._cond:
            broken = dict(self._broken)
        out = {}
        for name, (fid, why) in broken.items():
            if file_id(self._paths[name]) == fid:
                out[name] = why
            else:
                with self._cond:
                    if self._broken.get(name, (None, None))[0] == fid:
                        del self._broken[name]
        return out

    def _unavailable(self, name: str, fid: FileId | None, why: str) -> ModelUnavailableError:
        with self._cond:
            self._broken[name] = (fid, why)
            self._stats[name].last_error = why
        return ModelUnavailableError(name, why)

    def _notice_file(self, name: str, fid: FileId | None) -> None:
        """Drop what was built from an older version of the file (vocabulary, chat format)."""
        if self._files.get(name, fid) != fid:
            with self._vocab_lock:
                vocab = self._vocab.pop(name, None)
            self._formats.pop(name, None)
            with self._cond:
                self._stats[name].file_changes += 1
            if vocab is not None:
                _close_llama(vocab)
        self._files[name] = fid

    def status(self) -> dict[str, Any]:
        with self._cond:
            out: dict[str, Any] = {}
            for name in self._models:
                mine = [i for i in self._instances if i.key[0] == name]
                s = self._stats[name]
                out[name] = {
                    "loaded": sum(1 for i in mine if i.key[1] == "gen"),
                    "loaded_embed": sum(1 for i in mine if i.key[1] == "embed"),
                    "busy": sum(1 for i in mine if i.busy),
                    "memory_mb": round(sum(i.memory_mb for i in mine), 1),
                    "loads": s.loads, "unloads": s.unloads, "load_failures": s.load_failures,
                    "last_load_ms": s.last_load_ms, "last_load_error": s.last_error,
                    "file_changes": s.file_changes,
                    "chat_format": self.chat_format(name),
                }
            return out

    def memory_in_use_mb(self) -> float:
        with self._cond:
            return sum(i.memory_mb for i in self._instances) + self._reserved_mb

    def close(self) -> None:
        """Unload every idle instance (busy ones are unloaded when they are given back)."""
        with self._cond:
            self._closed = True
            idle = [i for i in self._instances if not i.busy]
            for i in idle:
                self._instances.remove(i)
            self._cond.notify_all()
        for i in idle:
            self._free(i)
        with self._vocab_lock:
            vocabs, self._vocab = list(self._vocab.values()), {}
        for v in vocabs:
            _close_llama(v)

    # -- generation -------------------------------------------------------------------------------
    def generate(self, model: ModelInfo, request: GenerationRequest) -> Iterator[TextDelta | Finished]:
        if model.name not in self._models:
            raise BackendError(model.name, "not in this backend's pool")
        return self._generate(self._models[model.name], request)

    def _generate(self, model: ModelInfo, request: GenerationRequest) -> Iterator[TextDelta | Finished]:
        kind = "embed" if request.mode == "embed" else "gen"
        inst, load_ms = self._checkout(model, kind, request.deadline)
        try:
            if request.mode == "embed":
                yield self._embed(model, inst.llm, request, load_ms)
            else:
                yield from self._complete(model, inst.llm, request, load_ms)
        except ZetaError:
            raise
        except Exception as exc:  # a llama.cpp failure is the model's failure, reported as such
            raise BackendError(model.name, f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._checkin(inst)

    def _embed(self, model: ModelInfo, llm: Any, request: GenerationRequest, load_ms: float | None) -> Finished:
        n_ctx = llm.n_ctx()
        for i, text in enumerate(request.inputs):
            n = len(llm.tokenize(text.encode("utf-8", errors="replace"), add_bos=True, special=False))
            if n > n_ctx:
                raise ContextOverflowError(model.name, f"input {i} has {n} tokens, above the context of {n_ctx}")
        vectors, count = llm.embed(list(request.inputs), normalize=True, return_count=True)
        return Finished("stop", int(count), 0, tuple(tuple(float(x) for x in v) for v in vectors), load_ms)

    def _complete(self, model: ModelInfo, llm: Any, request: GenerationRequest,
                  load_ms: float | None) -> Iterator[TextDelta | Finished]:
        kwargs: dict[str, Any] = {}
        for name in _PASSED_THROUGH:
            v = getattr(request, name)
            if v is not None:
                kwargs[name] = v
        if request.logit_bias:
            kwargs["logit_bias"] = {tid: bias for tid, bias in request.logit_bias}
        stop = list(request.stop)
        fmt = self._format_for(model, llm) if request.mode == "chat" else None
        if fmt is not None and fmt.kind == "named":
            yield from self._complete_named(model, llm, request, kwargs, load_ms)
            return
        if request.mode == "chat" and fmt.kind == "jinja":
            # The tools go to the template (which renders them as the model was trained to see them).
            res = fmt.formatter(messages=[dict(m) for m in request.messages], tools=list(request.tools) or None,
                                tool_choice=_template_tool_choice(request))
            tokens = llm.tokenize(res.prompt.encode("utf-8"), add_bos=not res.added_special, special=True)
            stop += res.stop if isinstance(res.stop, list) else [res.stop] if res.stop else []
            if res.stopping_criteria is not None:
                kwargs["stopping_criteria"] = res.stopping_criteria
        elif request.mode == "chat":  # plain transcript: user text is never parsed for special tokens
            tokens = llm.tokenize(plain_chat_prompt(request.messages).encode("utf-8"), add_bos=True, special=False)
            stop += list(PLAIN_STOP)
        else:
            tokens = llm.tokenize((request.prompt or "").encode("utf-8"), add_bos=True, special=True)
        n_ctx = llm.n_ctx()
        if len(tokens) >= n_ctx:
            raise ContextOverflowError(model.name, f"prompt of {len(tokens)} tokens does not fit the context of {n_ctx}")
        if request.json_mode or request.grammar is not None:
            kwargs["grammar"] = _grammar(model, request)
        chunks = llm.create_completion(prompt=tokens, max_tokens=request.max_tokens or -1, stop=stop or None,
                                       stream=True, **kwargs)
        yield from _relay(llm, chunks, lambda choice: choice.get("text"), len(tokens), load_ms)

    def _complete_named(self, model, llm, request, kwargs, load_ms):
        # Our grammar, not the handler's tool_choice: the serving layer turns a forced call's JSON into
        # the tool call the same way for every chat format.
        if request.json_mode or request.grammar is not None:
            kwargs["grammar"] = _grammar(model, request)
        chunks = llm.create_chat_completion(messages=[dict(m) for m in request.messages], stream=True,
                                            max_tokens=request.max_tokens, stop=list(request.stop) or None,
                                            tools=list(request.tools) or None,
                                            tool_choice=_template_tool_choice(request), **kwargs)
        yield from _relay(llm, chunks, lambda choice: (choice.get("delta") or {}).get("content"), None, load_ms)

    # -- formats ----------------------------------------------------------------------------------
    def _format_for(self, model: ModelInfo, llm: Any) -> _Format:
        fmt = self._formats.get(model.name)
        if fmt is None:
            fmt = self._formats[model.name] = self._make_format(model, llm)
        return fmt

    def _make_format(self, model: ModelInfo, llm: Any) -> _Format:
        from llama_cpp import llama_chat_format

        want = (model.chat_template or "auto").strip()
        if want == "plain":
            return _Format("plain")
        if "{%" in want or "{{" in want:
            template = want
        elif want == "auto":
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                return _Format("plain")  # a base model: no template to follow
        else:
            return _Format("named")
        eos, bos = llm.token_eos(), llm.token_bos()
        return _Format("jinja", llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos] if eos != -1 else None))

    def chat_format(self, model_name: str) -> str | None:
        """"jinja", "plain" or "named" once the model was used for chat; None before."""
        f = self._formats.get(model_name)
        return f.kind if f is not None else None

    # -- instances --------------------------------------------------------------------------------
    def _estimate_mb(self, model: ModelInfo) -> float:
        if model.memory_mb is not None:
            return model.memory_mb
        return os.path.getsize(self._paths[model.name]) / (1 << 20)

    def memory_problem(self, model: ModelInfo) -> str | None:
        need = self._estimate_mb(model)
        if self.memory_budget_mb is not None and need > self.memory_budget_mb:
            return f"needs ~{need:.0f} MB, more than the whole memory budget of {self.memory_budget_mb:.0f} MB"
        return None

    def _checkout(self, model: ModelInfo, kind: str, deadline: float | None) -> tuple[_Instance, float | None]:
        key = (model.name, kind)
        path = self._paths[model.name]
        fid = file_id(path)  # before every use: a loaded instance of a changed file must not be touched
        with self._cond:
            broken = self._broken.get(model.name)
            if broken is not None:
                if broken[0] == fid:
                    raise ModelUnavailableError(model.name, broken[1])
                del self._broken[model.name]  # the file changed: worth another try
        if fid is None:
            raise self._unavailable(model.name, None, f"no such file: {path}")
        self._notice_file(model.name, fid)
        need = self._estimate_mb(model)
        problem = self.memory_problem(model)
        if problem is not None:
            raise self._unavailable(model.name, fid, problem)
        to_free: list[_Instance] = []
        with self._cond:
            stale = [i for i in self._instances if i.key[0] == model.name and not i.busy and i.file != fid]
            for i in stale:
                self._instances.remove(i)
                self._stats[model.name].unloads += 1
        for i in stale:
            self._free(i)
        with self._cond:
            while True:
                if self._closed:
                    raise BackendError(model.name, "the backend is closed")
                idle = next((i for i in self._instances if i.key == key and not i.busy and i.file == fid), None)
                if idle is not None:
                    idle.busy = True
                    return idle, None
                mine = sum(1 for i in self._instances if i.key == key) + self._loading.get(key, 0)
                if mine < model.concurrency:
                    to_free = self._make_room(need)
                    if to_free is not None:
                        self._loading[key] = self._loading.get(key, 0) + 1
                        self._reserved_mb += need
                        break
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    raise BackendTimeoutError(model.name, "no free instance before the deadline "
                                              f"(concurrency {model.concurrency}, all busy or no memory)")
                self._cond.wait(timeout)
        for i in to_free:
            self._free(i)
        t0 = time.perf_counter()
        try:
            llm = self._load(model, kind)
        except BaseException as exc:
            with self._cond:
                self._loading[key] -= 1
                self._reserved_mb -= need
                self._stats[model.name].load_failures += 1
                self._stats[model.name].last_error = f"load failed: {exc}"
                self._cond.notify_all()
            if isinstance(exc, ZetaError) or not isinstance(exc, Exception):
                raise
            # The same bytes will fail the same way: out of the pool until the file changes.
            raise self._unavailable(model.name, fid, f"failed to load {path}: {exc}") from exc
        load_ms = (time.perf_counter() - t0) * 1000.0
        inst = _Instance(llm, key, need, busy=True, last_used=time.monotonic(), file=fid)
        with self._cond:
            self._loading[key] -= 1
            self._reserved_mb -= need
            self._instances.append(inst)
            s = self._stats[model.name]
            s.loads += 1
            s.last_load_ms = round(load_ms, 1)
        return inst, load_ms

    def _make_room(self, need: float) -> list[_Instance] | None:
        """Under the lock: idle instances to unload (LRU first) so ``need`` MB fit; None if impossible now."""
        if self.memory_budget_mb is None:
            return []
        used = sum(i.memory_mb for i in self._instances) + self._reserved_mb
        victims = []
        for i in sorted((i for i in self._instances if not i.busy), key=lambda i: i.last_used):
            if used + need <= self.memory_budget_mb:
                break
            victims.append(i)
            used -= i.memory_mb
        if used + need > self.memory_budget_mb:
            return None  # only busy instances hold the memory: wait for one to come back
        for v in victims:
            self._instances.remove(v)
            self._stats[v.key[0]].unloads += 1
        return victims

    def _checkin(self, inst: _Instance) -> None:
        changed = file_id(self._paths[inst.key[0]]) != inst.file
        with self._cond:
            inst.busy = False
            inst.last_used = time.monotonic()
            drop = self._closed or changed  # an instance of a replaced file is never used again
            if drop:
                self._instances.remove(inst)
            self._cond.notify_all()
        if drop:
            self._free(inst)

    def _free(self, inst: _Instance) -> None:
        _close_llama(inst.llm)

    def _load(self, model: ModelInfo, kind: str) -> Any:
        llama_cpp = import_llama_cpp()
        opts = dict(model.llama_options)
        if self.n_threads is not None:
            opts.setdefault("n_threads", self.n_threads)
        if kind == "embed":
            opts.update(embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN)
        elif model.chat_template and "{" not in model.chat_template and model.chat_template not in ("auto", "plain"):
            opts["chat_format"] = model.chat_template
        return llama_cpp.Llama(model_path=self._paths[model.name], n_ctx=self.context_window(model),
                               verbose=self.verbose, **opts)

    def _vocab_for(self, name: str) -> Any:
        with self._vocab_lock:
            v = self._vocab.get(name)
            if v is None:
                llama_cpp = import_llama_cpp()
                try:
                    v = llama_cpp.Llama(model_path=self._paths[name], vocab_only=True, verbose=self.verbose)
                except Exception as exc:
                    raise BackendError(name, f"failed to read the vocabulary of {self._paths[name]}: {exc}") from exc
                self._vocab[name] = v
            return v

    def calibrate(self, model_name: str, *, prompt_tokens: int = 128, gen_tokens: int = 32,
                  repeats: int = 3) -> dict[str, float]:
        """Measure this machine's cost model for one model: load time, ms per prompt token and per
        generated token (medians of ``repeats`` runs, after one warm-up run that is not counted; the
        KV cache is reset so no run reuses another's prompt).

        One streamed completion of ``gen_tokens + 1`` tokens: the time to its first token is the
        prompt's (over the prompt's tokens), the rest divided by ``gen_tokens`` a generated token's.
        Both from the same call, so a busy machine slows both alike.  End-of-sequence is suppressed so
        the count is exact.  Embed-only models time ``embed``."""
        import statistics

        llama_cpp = import_llama_cpp()
        model = self._models[model_name]
        embed_only = set(model.capabilities) == {"embed"}
        kind = "embed" if embed_only else "gen"
        loads, per_prompt, per_gen = [], [], []
        filler = ("Local models answer requests routed to them by a learned router. " * 64).encode()
        for run in range(repeats + 1):
            t0 = time.perf_counter()
            llm = self._load(model, kind)
            load_ms = (time.perf_counter() - t0) * 1000.0
            try:
                n_ctx = llm.n_ctx()
                p = max(2, min(prompt_tokens, n_ctx - gen_tokens - 4))
                tokens = llm.tokenize(filler, add_bos=True)[:p]
                if embed_only:
                    text = llm.detokenize(tokens[1:]).decode("utf-8", errors="ignore")
                    t0 = time.perf_counter()
                    _, count = llm.embed([text], return_count=True)
                    if run:
                        loads.append(load_ms)
                        per_prompt.append((time.perf_counter() - t0) * 1000.0 / max(1, count))
                    continue
                eos = llm.token_eos()

                def no_eos(_ids, scores):
                    scores[eos] = -float("inf")  # keep generating: exactly the tokens asked for
                    return scores

                llm.reset()
                t = time.perf_counter()
                first, n = None, 0
                for _chunk in llm.create_completion(prompt=tokens, max_tokens=gen_tokens + 1, temperature=0.0,
                                                    stream=True,
                                                    logits_processor=llama_cpp.LogitsProcessorList([no_eos])):
                    n += 1
                    if first is None:
                        first = time.perf_counter()
                end = time.perf_counter()
                if first is None or n < 2:
                    raise BackendError(model.name, "calibration could not generate the tokens it asked for")
                if run:  # run 0 warms the caches and allocations up
                    loads.append(load_ms)
                    per_prompt.append((first - t) * 1000.0 / len(tokens))
                    per_gen.append((end - first) * 1000.0 / gen_tokens)
            finally:
                _close_llama(llm)
        result = {"load_ms": round(statistics.median(loads), 2),
                  "ms_per_prompt_token": round(statistics.median(per_prompt), 4)}
        if per_gen:
            result["ms_per_token"] = round(statistics.median(per_gen), 4)
        return result


_PASSED_THROUGH = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "top_k", "min_p",
                   "repeat_penalty")


def _template_tool_choice(request: GenerationRequest) -> Any:
    """The tool_choice a chat template sees ("auto" for a call the grammar forces: templates only know
    auto/none, and the grammar does the forcing)."""
    return ("auto" if request.tools else None) if request.tool_choice != "none" else "none"


def _grammar(model: ModelInfo, request: GenerationRequest) -> Any:
    """The llama.cpp grammar of a constrained request: the caller's GBNF; else the request's schema
    (json_schema, a tool's parameters); else any JSON.  A schema llama.cpp's converter cannot take
    is the client's error."""
    from llama_cpp import llama_grammar

    if request.grammar is not None:
        try:
            return llama_grammar.LlamaGrammar.from_string(request.grammar, verbose=False)
        except Exception as exc:  # llama.cpp's parser raises ValueError with little detail
            raise ContractError("grammar", f"not a valid GBNF grammar: {exc}") from None
    if request.json_schema is None:
        return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
    try:
        return llama_grammar.LlamaGrammar.from_json_schema(request.json_schema, verbose=False)
    except Exception as exc:
        raise _SchemaError(model.name, f"llama.cpp cannot turn the JSON schema into a grammar: "
                                       f"{type(exc).__name__}: {exc}") from exc


class _SchemaError(BackendError):
    """A schema llama.cpp cannot compile: the request's fault, so no cooldown for the model, and its
    record's error starts with ``CLIENT_ERROR_PREFIX`` (training leaves it out)."""

    cooldown = False

    def __init__(self, model: str, message: str):
        super().__init__(model, message)
        self.args = (f"{CLIENT_ERROR_PREFIX} {message}",)


_LLAMA_PARAMS: set[str] | None = None


def _check_llama_options(llama_cls: Any, model: ModelInfo) -> None:
    """llama_cpp.Llama swallows unknown keyword arguments: refuse a misspelt option instead."""
    global _LLAMA_PARAMS
    if _LLAMA_PARAMS is None:
        _LLAMA_PARAMS = {n for n, p in inspect.signature(llama_cls.__init__).parameters.items()
                         if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD}
    for k in model.llama_options:
        if k not in _LLAMA_PARAMS:
            raise ContractError(f"{model.name}.llama_options.{k}", "not a llama_cpp.Llama argument")


def _close_llama(llm: Any) -> None:
    close = getattr(llm, "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # unloading must never take a request down with it
            pass
