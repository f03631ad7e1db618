"""How soon a user's Pd synth sounds a decision (``live improvise --pd-audio``).

Starts its own ``jackd --no-realtime -d dummy`` (no sound card), Pd playing
``data/pd/sine_synth.pd`` through :class:`~musicgym.live.pd_audio.PdAudioOut`, and a PortAudio
capture client (sounddevice) that Pd's output is connected to. Each trial sends amplitude 0.5
after silence and times, in captured samples, how long after the send the sine is heard; it
also times :meth:`PdAudioOut.set_params` itself (the server's cost per decision). The capture
side's own buffering (one JACK period, 256 samples = 5.8 ms here) is included::

    python benchmarks/pd_audio_latency.py                      # Pd's default -audiobuf (25 ms)
    python benchmarks/pd_audio_latency.py -audiobuf 10         # more pd flags after the script

Needs pd (puredata-core), jackd and jack_connect (jackd2) and sounddevice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SR = 44100
PERIOD = 256


def main(pd_flags: list[str], trials: int = 20) -> None:
    import musicgym
    from musicgym.live.pd_audio import PdAudioOut

    name = f"musicgym-bench-{os.getpid()}"
    os.environ["JACK_DEFAULT_SERVER"], os.environ["JACK_NO_START_SERVER"] = name, "1"
    jackd = subprocess.Popen([shutil.which("jackd"), "--no-realtime", "--name", name, "-d",
                              "dummy", "-r", str(SR), "-p", str(PERIOD)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        import sounddevice as sd

        sd._terminate()
        sd._initialize()   # PortAudio looks for the JACK server when it starts
        blocks: list[np.ndarray] = []
        synth = Path(musicgym.__file__).parent / "data" / "pd" / "sine_synth.pd"
        with PdAudioOut(synth, [0.3, 0.0], api="jack", jack_name="bench-pd",
                        jack_connect=False, options=pd_flags) as pd:
            stream = sd.InputStream(samplerate=SR, blocksize=PERIOD, channels=1,
                                    dtype="float32", device="system",
                                    callback=lambda data, *_: blocks.append(data[:, 0].copy()))
            stream.start()
            ports = subprocess.run(["jack_lsp"], capture_output=True, text=True,
                                   check=True).stdout.split("\n")
            into = next(p for p in ports if p.startswith("PortAudio") and ":in_" in p)
            subprocess.run(["jack_connect", "bench-pd:output_1", into], check=True)
            time.sleep(0.3)
            heard_ms, send_us = [], []
            for k in range(trials):
                time.sleep(0.1 + 0.037 * (k % 5))   # not locked to the JACK period
                mark = sum(len(b) for b in list(blocks))
                start = time.perf_counter()
                pd.set_params(np.array([0.3, 0.5]))
                send_us.append((time.perf_counter() - start) * 1e6)
                time.sleep(0.3)
                audio = np.concatenate(blocks)[mark:]
                heard_ms.append(np.argmax(np.abs(audio) > 0.05) / SR * 1e3)
                pd.set_params(np.array([0.3, 0.0]))
                time.sleep(0.15)
            stream.stop()
            stream.close()
        sd._terminate()
    finally:
        jackd.terminate()
        jackd.wait(10)
    heard, send = np.array(heard_ms), np.array(send_us)
    print(f"pd flags {pd_flags or '(none)'}: {trials} changes heard after median "
          f"{np.median(heard):.1f} ms (min {heard.min():.1f}, max {heard.max():.1f}); "
          f"set_params median {np.median(send):.0f} us, max {send.max():.0f} us; "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
