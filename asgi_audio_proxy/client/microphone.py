"""The test client's microphone: ``sounddevice`` capture turned into 16 kHz PCM16 frames.

Owns: opening an input stream (``sounddevice.RawInputStream`` or any factory with its
signature), moving the audio callback's blocks from PortAudio's thread into the event loop
through a bounded queue, and resampling the device's rate to 16 kHz with the package's
:class:`~asgi_audio_proxy.audio.Resampler`. Must not: talk to the proxy (``talk.py`` does).

Overflow policy: the queue holds :data:`MAX_QUEUED_BLOCKS` blocks (about 2 s); if the loop falls
that far behind, new blocks are dropped, counted in :attr:`MicrophoneCapture.dropped_blocks` and
logged once per second of loss, since late audio is worse than lost audio for a live talk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from ..audio.resample import Resampler
from ..audio.wav import CLIENT_SAMPLE_RATE_HZ
from .audio import FRAME_S

__all__ = ["MAX_QUEUED_BLOCKS", "InputStream", "MicrophoneCapture", "MicrophoneUnavailable",
           "open_sounddevice"]

logger = logging.getLogger("asgi_audio_proxy.talk_microphone")

#: blocks of FRAME_S waiting for the loop: about 2 s of audio
MAX_QUEUED_BLOCKS = 40


class MicrophoneUnavailable(RuntimeError):
    """No microphone to record from: ``sounddevice`` missing, PortAudio missing, or no device."""


class InputStream(Protocol):
    """The part of ``sounddevice.RawInputStream`` the capture uses."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


#: ``factory(samplerate=, channels=, dtype=, blocksize=, callback=)``, like ``RawInputStream``
StreamFactory = Callable[..., InputStream]


def open_sounddevice() -> tuple[StreamFactory, int]:
    """The real ``sounddevice.RawInputStream`` and the default input device's sample rate.

    Raises:
        MicrophoneUnavailable: the package, the PortAudio library or an input device is missing.
    """
    try:
        import sounddevice
    except ImportError as exc:
        raise MicrophoneUnavailable(
            "microphone mode needs the sounddevice package: "
            "pip install 'asgi-audio-proxy[microphone]'") from exc
    except OSError as exc:  # sounddevice raises this when the PortAudio library is missing
        raise MicrophoneUnavailable(f"sounddevice cannot load PortAudio: {exc}") from exc
    try:
        device: Any = sounddevice.query_devices(kind="input")
    except (sounddevice.PortAudioError, ValueError) as exc:
        raise MicrophoneUnavailable(f"no microphone found: {exc}") from exc
    factory: StreamFactory = sounddevice.RawInputStream
    return factory, int(device["default_samplerate"])


class MicrophoneCapture:
    """Records mono PCM16 at ``device_rate_hz`` and yields 16 kHz frames of :data:`FRAME_S`.

    Args:
        factory: builds the input stream (``sounddevice.RawInputStream`` or a fake).
        device_rate_hz: the rate to open the device at; resampled to 16 kHz here.
    """

    def __init__(self, factory: StreamFactory, device_rate_hz: int) -> None:
        if device_rate_hz <= 0:
            raise ValueError(f"invalid device_rate_hz={device_rate_hz!r}")
        self._factory = factory
        self.device_rate_hz = device_rate_hz
        self.dropped_blocks = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_QUEUED_BLOCKS)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        # runs on PortAudio's thread: copy the block now, hand it to the loop's thread
        if status:
            logger.debug("input stream status: %s", status)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._enqueue, bytes(indata))

    def _enqueue(self, block: bytes) -> None:
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            self.dropped_blocks += 1
            if self.dropped_blocks % round(1 / FRAME_S) == 1:
                logger.warning("microphone audio dropped: %d blocks so far", self.dropped_blocks)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """Open the stream and yield 16 kHz PCM16 frames as they are recorded, until closed.

        Raises:
            MicrophoneUnavailable: the stream cannot be opened.
        """
        self._loop = asyncio.get_running_loop()
        resampler = Resampler(self.device_rate_hz, CLIENT_SAMPLE_RATE_HZ)
        try:
            stream = self._factory(samplerate=self.device_rate_hz, channels=1, dtype="int16",
                                   blocksize=round(self.device_rate_hz * FRAME_S),
                                   callback=self._callback)
            stream.start()
        except Exception as exc:  # PortAudio reports device trouble as its own error class
            raise MicrophoneUnavailable(f"cannot open the microphone: {exc}") from exc
        try:
            while True:
                pcm = resampler.feed(await self._queue.get())
                if pcm:
                    yield pcm
        finally:
            self._loop = None
            stream.stop()
            stream.close()
