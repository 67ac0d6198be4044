"""What the model has heard from one Realtime client, and what that decides about a response.

Owns: :class:`HeardAudio`: appended audio decoded (odd bytes carried to the next append, the
real API's error for one it cannot take), a user item's audio decoded whole, and the facts a
``response.create`` turns on: whether the model has heard any audio yet (a system item's text
is folded in before the first audio only), whether the last commit held only silence (its
loudest sample under :data:`SILENCE_PEAK`: the model will not answer it), and whether audio
items were spoken to the model since the last reply. Must not: build events, know the
conversation's items or the session's options, or read a clock.
"""

from __future__ import annotations

from .codec import InputDecoder, decode_whole, peak
from .wire import RealtimeRequestError

__all__ = ["SILENCE_PEAK", "HeardAudio"]

#: committed audio whose loudest sample stays under this is silence: the model will not answer
#: it (about -40 dBFS; a voice, even quiet, peaks far above)
SILENCE_PEAK = 328


class HeardAudio:
    """One connection's input audio, as far as the model has heard it."""

    def __init__(self) -> None:
        self._decoder = InputDecoder()
        self._peak = 0  # loudest sample appended since the last commit
        #: the model has heard audio (appended or spoken in an item)
        self.has_heard = False
        #: the last commit held only silence, and nothing came since
        self.is_silent_commit = False
        #: audio items were spoken to the model since the last reply
        self.has_item_audio = False

    def append(self, audio: str, fmt: str, event_id: str | None) -> tuple[bytes, int]:
        """An ``input_audio_buffer.append``'s ``audio`` in format ``fmt``: PCM16 and its rate.

        Raises:
            RealtimeRequestError: audio that is not base64 of the session's input format.
        """
        try:
            pcm, rate = self._decoder.decode(audio, fmt)
        except ValueError as exc:
            expected = "mono PCM16 at 24kHz" if fmt == "audio/pcm" else f"{fmt} at 8kHz"
            raise RealtimeRequestError(f"Invalid 'audio'. Expected base64-encoded audio bytes ({expected}) "
                                       f"but got an invalid value: {exc}.", param="audio",
                                       event_id=event_id) from exc
        if pcm:
            self.has_heard = True
            if self._peak < SILENCE_PEAK:  # once loud, the commit is not silent: no need to look
                self._peak = max(self._peak, peak(pcm))
            self.is_silent_commit = False
        return pcm, rate

    def speak(self, audio: list[str], fmt: str, event_id: str | None) -> list[tuple[bytes, int, int]]:
        """A user item's audio pieces: PCM16, its rate and its size on the wire, each.

        Raises:
            RealtimeRequestError: a piece that is not base64 audio of the session's input format.
        """
        try:
            spoken = decode_whole(audio, fmt)
        except ValueError as exc:
            raise RealtimeRequestError(f"Invalid 'item.content.audio': {exc}.", event_id=event_id,
                                       param="item.content") from exc
        if spoken:
            self.has_heard = self.has_item_audio = True
            self.is_silent_commit = False
        return spoken

    def commit(self) -> None:
        """The appended audio is a turn: silent if it never rose above :data:`SILENCE_PEAK`
        and no audio item came with it."""
        self.is_silent_commit, self._peak = self._peak < SILENCE_PEAK and not self.has_item_audio, 0

    def clear(self) -> None:
        """The appended audio is forgotten (its odd byte too)."""
        self._peak = 0
        self._decoder.reset()

    def format_changed(self) -> None:
        """The session's input format changed: an odd byte of the old one is dropped."""
        self._decoder.reset()

    def reply_started(self) -> None:
        """The model answers: what it heard before is its turn, answered."""
        self._peak, self.is_silent_commit, self.has_item_audio = 0, False, False
