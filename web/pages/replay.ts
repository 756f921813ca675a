// The replay page: reads a recording (HRTHREC1) chosen by the user, plays it
// into a fresh replica with pause, speed and seek, and draws it as the game
// page would have. Seeking back replays from the start (the replica's state
// is the sum of everything before).

import { Replica, readRecording } from "../client/src/index.js";
import type { Record } from "../client/src/index.js";
import { RELIABLE_CHANNEL, STATE_CHANNEL } from "../client/src/world/wire.js";
import { WorldView, chatLine, logLine } from "./view.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const view = new WorldView($<HTMLCanvasElement>("world"));
const seek = $<HTMLInputElement>("replay-seek");
const pause = $<HTMLButtonElement>("replay-pause");

interface Playback {
  records: Record[];
  replica: Replica;
  /** Records applied so far. */
  next: number;
  /** Replay time in ms. */
  at: number;
  duration: number;
  playing: boolean;
  speed: number;
}
let playback: Playback | undefined;
let lastFrame = performance.now();

async function load(file: File): Promise<void> {
  $("replay-error").textContent = "";
  try {
    const records = readRecording(new Uint8Array(await file.arrayBuffer()));
    if (records.length === 0) throw new Error("the recording is empty");
    const duration = records[records.length - 1]!.micros / 1000;
    playback = { records, replica: new Replica(), next: 0, at: 0, duration, playing: true, speed: Number($<HTMLSelectElement>("replay-speed").value) };
    seek.max = String(Math.ceil(duration));
    seek.disabled = false;
    pause.disabled = false;
    pause.textContent = "Pause";
    $("records").textContent = `${records.length} in ${(duration / 1000).toFixed(1)} s`;
    $("chat-log").replaceChildren();
    (window as unknown as { replay: Playback }).replay = playback;
  } catch (e) {
    $("replay-error").textContent = (e as Error).message;
  }
}

/** Applies every record up to `at` ms, from the start again if that is in the past. */
function advanceTo(p: Playback, at: number): void {
  if (at < p.at) {
    p.replica = new Replica();
    p.next = 0;
    $("chat-log").replaceChildren();
  }
  p.at = Math.min(at, p.duration);
  while (p.next < p.records.length && p.records[p.next]!.micros / 1000 <= p.at) {
    const record = p.records[p.next++]!;
    const stamp = record.micros / 1000;
    try {
      const events =
        record.channel === RELIABLE_CHANNEL
          ? p.replica.applyReliable(record.bytes, stamp)
          : record.channel === STATE_CHANNEL
            ? p.replica.applyFrame(record.bytes, stamp)
            : [];
      for (const event of events) {
        if (event.type === "chat") logLine($("chat-log"), ...chatLine(event));
        if (event.type === "entered") logLine($("chat-log"), `entered ${event.zone}, line ${event.line}`, "system");
      }
    } catch (e) {
      logLine($("chat-log"), `a damaged record was skipped: ${(e as Error).message}`, "refused");
    }
  }
}

function frame(): void {
  requestAnimationFrame(frame);
  const now = performance.now();
  const dt = now - lastFrame;
  lastFrame = now;
  const p = playback;
  if (!p) return;
  if (p.playing) {
    advanceTo(p, p.at + dt * p.speed);
    if (p.at >= p.duration) {
      p.playing = false;
      pause.textContent = "Play";
    }
    seek.value = String(Math.round(p.at));
  }
  view.draw(p.replica, p.at);
  $("replay-time").textContent = `${(p.at / 1000).toFixed(1)} / ${(p.duration / 1000).toFixed(1)} s`;
  const entered = p.replica.entered;
  $("place").textContent = entered ? `${entered.zone}, line ${entered.line}` : "–";
  $("actors").textContent = String(p.replica.actors.size);
}

$("replay-file").addEventListener("change", (e) => {
  const file = (e.target as HTMLInputElement).files?.[0];
  if (file) void load(file);
});
pause.addEventListener("click", () => {
  if (!playback) return;
  if (!playback.playing && playback.at >= playback.duration) advanceTo(playback, 0);
  playback.playing = !playback.playing;
  pause.textContent = playback.playing ? "Pause" : "Play";
});
$("replay-speed").addEventListener("change", (e) => {
  if (playback) playback.speed = Number((e.target as HTMLSelectElement).value);
});
seek.addEventListener("input", () => {
  if (playback) advanceTo(playback, Number(seek.value));
});
requestAnimationFrame(frame);
