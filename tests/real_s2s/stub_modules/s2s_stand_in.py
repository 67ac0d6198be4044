"""The stand-in models behind speech-to-speech's real Realtime server.

- :class:`ToneTTSHandler`, registered as the TTS backend ``stand-in-tone``: a ``BaseHandler``
  shaped like the server's own TTS handlers (``TTS/pocket_tts_handler.py``): each text part becomes
  ``S2S_STUB_TTS_S_PER_CHAR`` (0.04) s of a phase-continuous 600 Hz tone per character, yielded as
  512-sample int16 blocks at 16 kHz, one block every ``S2S_STUB_TTS_BLOCK_S`` (0.008) s, checking
  the cancel scope between blocks as the real handlers do; ``EndOfResponse`` becomes
  ``AUDIO_RESPONSE_DONE``.
- :class:`ModelServer`: a loopback HTTP server playing the two remote model APIs the server's
  *real* ``openai`` STT and ``chat-completions`` LLM handlers call:
  ``POST /v1/audio/transcriptions`` answers ``{"text": "<D> seconds of speech"}`` (D: the WAV's
  length, one decimal), and ``POST /v1/chat/completions`` answers, streamed word by word (SSE, with
  a final usage chunk) or whole, ``Turn N: you said <last user message>.`` where N counts the
  assistant messages in the request plus one.
"""

from __future__ import annotations

import email.parser
import email.policy
import io
import json
import logging
import os
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Event
from typing import Any

import numpy as np
from speech_to_speech.baseHandler import BaseHandler
from speech_to_speech.pipeline.cancel_scope import CancelScope
from speech_to_speech.pipeline.messages import AUDIO_RESPONSE_DONE, EndOfResponse
from speech_to_speech.pipeline.speculative_turns import SpeculativeTurnTracker

logger = logging.getLogger(__name__)

TONE_HZ = 600.0
RATE_HZ = 16_000
BLOCK = 512


@dataclass
class ToneTTSHandlerArguments:
    """Options of the ``stand-in-tone`` TTS backend (``--tone_tts_*``)."""

    tone_tts_s_per_char: float = field(
        default=float(os.environ.get("S2S_STUB_TTS_S_PER_CHAR", "0.04")),
        metadata={"help": "Seconds of tone per character of text."},
    )
    tone_tts_block_s: float = field(
        default=float(os.environ.get("S2S_STUB_TTS_BLOCK_S", "0.008")),
        metadata={"help": "Pause before each 512-sample block (32 ms of audio)."},
    )


class ToneTTSHandler(BaseHandler[Any, Any]):
    """Text in, a 600 Hz tone out; the control flow of the server's own TTS handlers."""

    def setup(
        self,
        should_listen: Event,
        s_per_char: float = 0.04,
        block_s: float = 0.008,
        gen_kwargs: dict[str, Any] | None = None,
        cancel_scope: CancelScope | None = None,
        speculative_turns: SpeculativeTurnTracker | None = None,
    ) -> None:
        self.should_listen = should_listen
        self.s_per_char = s_per_char
        self.block_s = block_s
        self.cancel_scope = cancel_scope
        self.speculative_turns = speculative_turns
        self.phase = 0

    def process(self, tts_input: Any) -> Iterator[Any]:
        turns = self.speculative_turns
        if isinstance(tts_input, EndOfResponse):
            if turns and not turns.is_latest_after_reopen_grace(tts_input.turn_id, tts_input.turn_revision):
                if tts_input.response_key is None:
                    return
                tts_input.cleanup_only = True
            yield AUDIO_RESPONSE_DONE
            return
        if turns and not turns.is_latest_after_reopen_grace(tts_input.turn_id, tts_input.turn_revision):
            return
        if turns:
            turns.commit(tts_input.turn_id, tts_input.turn_revision)
        gen = self.cancel_scope.generation if self.cancel_scope else None
        total = int(len(tts_input.text) * self.s_per_char * RATE_HZ)
        logger.info("stand-in TTS: %d samples for %r", total, tts_input.text)
        for start in range(0, total, BLOCK):
            if gen is not None and self.cancel_scope is not None and self.cancel_scope.is_stale(gen):
                logger.info("stand-in TTS: cancelled")
                return
            time.sleep(self.block_s)
            n = np.arange(self.phase, self.phase + min(BLOCK, total - start))
            self.phase += len(n)
            block = (0.3 * 32767 * np.sin(2 * np.pi * TONE_HZ * n / RATE_HZ)).astype(np.int16)
            yield np.pad(block, (0, BLOCK - len(block)))


def _wav_seconds(body: bytes, content_type: str) -> float:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            with wave.open(io.BytesIO(part.get_payload(decode=True))) as wav:
                return wav.getnframes() / wav.getframerate()
    raise ValueError("no file part")


def _reply(request: dict[str, Any]) -> str:
    messages = request.get("messages", [])
    turn = 1 + sum(1 for m in messages if m.get("role") == "assistant")
    said = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    if isinstance(said, list):
        said = " ".join(str(p.get("text", "")) for p in said if isinstance(p, dict))
    return f"Turn {turn}: you said {str(said).strip().rstrip('.')}."


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # close-delimited bodies: a stream ends when the socket closes

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stand-in model server: " + format, *args)

    def _json(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.endswith("/audio/transcriptions"):
            seconds = _wav_seconds(body, self.headers.get("Content-Type", ""))
            self._json({"text": f"{seconds:.1f} seconds of speech"})
        elif self.path.endswith("/chat/completions"):
            request = json.loads(body)
            self._complete(request, _reply(request))
        else:
            self.send_error(404)

    def _complete(self, request: dict[str, Any], text: str) -> None:
        base = {"id": "chatcmpl-stand-in", "created": int(time.time()), "model": request.get("model", "")}
        usage = {"prompt_tokens": len(request.get("messages", [])), "completion_tokens": len(text.split()),
                 "total_tokens": len(request.get("messages", [])) + len(text.split())}
        if not request.get("stream"):
            self._json({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = text.split(" ")
        chunks = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        chunks += [{"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}
                   for i, w in enumerate(words)]
        chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
        for choice in chunks:
            self._event({**base, "object": "chat.completion.chunk", "choices": [choice]})
            time.sleep(0.01)
        self._event({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, payload: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
        self.wfile.flush()


class ModelServer:
    """The stand-in STT and LLM APIs on 127.0.0.1, served from a daemon thread."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, name="stand-in-models", daemon=True).start()
