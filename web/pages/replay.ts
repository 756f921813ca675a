// The replay page: reads a recording (HRTHREC1) chosen by the user, plays it
// into a fresh replica with pause, speed and seek, and draws it as the
// world's page would have. Seeking back replays from the start (the
// replica's state is the sum of everything before). A recording starts with
// the game's schema: one of the built-in world plays into the world's
// generated replica and is drawn as the world's page draws; one of another
// game is refused with what to use instead (`hearth replay`), and one
// without a schema (made by an older Hearth, with the world engine since
// removed) is refused with that reason.

import { SCHEMA_CHANNEL, ZoneMap, readRecording } from "../client/src/index.js";
import type { Record } from "../client/src/index.js";
import { RELIABLE_CHANNEL, STATE_CHANNEL } from "../client/src/game/replica.js";
import { $, logTo } from "./game-login.js";
import { VERSION, decodeMessage, newReplica } from "./world.generated.js";
import { ZoneCanvas, beingsOf } from "./world-view.js";
import type { Being } from "./world-view.js";

const canvas = $<HTMLCanvasElement>("world");
const zoneCanvas = new ZoneCanvas(canvas);

/** A recording of the world, as it plays. */
class GamePlayback {
  replica = newReplica();
  map?: ZoneMap;
  zone = "";

  /** Applies one record; the chat lines it brings go to `log`. */
  apply(record: Record, log: (text: string, kind: string) => void): void {
    if (record.channel === RELIABLE_CHANNEL) this.replica.applyReliable(record.bytes);
    else if (record.channel === STATE_CHANNEL) this.replica.applyFrame(record.bytes);
    for (let event = this.replica.pollEvent(); event; event = this.replica.pollEvent()) {
      if (event.type === "joined") {
        this.map = new ZoneMap(this.replica.map);
      } else if (event.type === "message") {
        const message = decodeMessage(event);
        if (message?.type === "entered") {
          this.zone = message.zone;
          log(`entered ${message.zone}`, "system");
        } else if (message?.type === "chat") {
          const from = message.scope === "system" ? "" : `${message.from}${message.scope === "whisper" ? ` to ${message.to}` : ""} (${message.scope}): `;
          log(`${from}${message.text}`, message.scope === "system" ? "system" : "");
        }
      }
    }
  }

  beings(): Being[] {
    return beingsOf(this.replica);
  }
}
const seek = $<HTMLInputElement>("replay-seek");
const pause = $<HTMLButtonElement>("replay-pause");

/** What plays; `window.replay`, for tests and the curious. */
interface Playback {
  /** The recording's records after its schema. */
  records: Record[];
  game: GamePlayback;
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

function log(text: string, kind = ""): void {
  logTo("chat-log", text, kind);
}

/** The records of a recording of the built-in world, its schema taken off; throws why any other recording cannot play here. */
function worldRecords(file: Uint8Array): Record[] {
  const records = readRecording(file);
  if (records.length === 0) throw new Error("the recording is empty");
  if (records[0]!.channel !== SCHEMA_CHANNEL) {
    throw new Error(
      "this recording was made by an older Hearth, whose world engine is gone: it starts without the game's schema, and no page of this version can replay it",
    );
  }
  const schema = JSON.parse(new TextDecoder().decode(records.shift()!.bytes)) as { game?: string; version?: string };
  if (schema.version !== VERSION) {
    throw new Error(`a recording of the game ${String(schema.game)} (schema ${String(schema.version)}): this page replays the built-in world; hearth replay FILE plays any game's`);
  }
  if (records.length === 0) throw new Error("the recording is empty");
  return records;
}

async function load(file: File): Promise<void> {
  $("replay-error").textContent = "";
  try {
    const records = worldRecords(new Uint8Array(await file.arrayBuffer()));
    const duration = records[records.length - 1]!.micros / 1000;
    playback = {
      records,
      game: new GamePlayback(),
      next: 0,
      at: 0,
      duration,
      playing: true,
      speed: Number($<HTMLSelectElement>("replay-speed").value),
    };
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
    p.game = new GamePlayback();
    p.next = 0;
    $("chat-log").replaceChildren();
  }
  p.at = Math.min(at, p.duration);
  while (p.next < p.records.length && p.records[p.next]!.micros / 1000 <= p.at) {
    const record = p.records[p.next++]!;
    try {
      p.game.apply(record, log);
    } catch (e) {
      log(`a damaged record was skipped: ${(e as Error).message}`, "refused");
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
  $("replay-time").textContent = `${(p.at / 1000).toFixed(1)} / ${(p.duration / 1000).toFixed(1)} s`;
  zoneCanvas.draw(p.game.map, p.game.beings());
  $("place").textContent = p.game.zone || "–";
  $("actors").textContent = String(p.game.replica.actors.size);
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
