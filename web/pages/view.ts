// Drawing a replica on a canvas: the zone's map (drawn once per zone), the
// actors with their names, the player's own actor ringed. The game page and
// the replay page both draw with it.

import { MAP_LEGEND, interpolated, world } from "../client/src/index.js";
import type { Replica, ReplicaActor, ZoneMap } from "../client/src/index.js";

const COLOURS = ["#e4572e", "#29335c", "#f3a712", "#a8c686", "#669bbc", "#c879ff", "#ffb7c3", "#7ae7c7"];
/** Each map cell's colour (0xRRGGBB), by its character. */
const CELL_COLOURS: Record<string, number> = { "#": 0x4a4136, "~": 0x2f6690, ".": 0x7a9a55, S: 0x8fae62, P: 0xc58cf2 };
/** The same by cell code: the cell's index in MAP_LEGEND. */
const CELL_RGB = [...MAP_LEGEND].map((cell) => CELL_COLOURS[cell]!);
/** Remote actors are drawn this far in the past, between two updates. */
export const INTERPOLATION_MS = 100;

export class WorldView {
  private readonly ctx: CanvasRenderingContext2D;
  /** The map at one pixel per cell, drawn scaled every frame. */
  private mapImage?: HTMLCanvasElement;
  /** The map `mapImage` shows: a new one (another zone) is painted again. */
  private mapOf?: ZoneMap;
  /** Pixels per cell. */
  scale = 16;

  constructor(readonly canvas: HTMLCanvasElement) {
    this.ctx = canvas.getContext("2d")!;
  }

  /** Draws `replica` as of `now` (ms on the clock its updates were stamped with). */
  draw(replica: Replica, now: number, target?: world.Pos): void {
    const ctx = this.ctx;
    ctx.fillStyle = "#2b2f26";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const image = this.map(replica);
    if (!image) return;
    // Cells stay sharp squares.
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, 0, 0, image.width * this.scale, image.height * this.scale);
    const own = replica.ownActor;
    const px = (units: number) => (units / world.UNITS_PER_CELL) * this.scale;
    ctx.font = "12px system-ui";
    ctx.textAlign = "center";
    for (const actor of replica.actors.values()) {
      // The player where prediction has them now; others a little in the past.
      const pos = actor.id === own && replica.position ? replica.position : interpolated(actor, now, INTERPOLATION_MS);
      this.actor(actor, px(pos.x), px(pos.y), actor.id === own);
    }
    if (target) {
      ctx.strokeStyle = "#fff";
      ctx.strokeRect(px(target.x) - 3, px(target.y) - 3, 6, 6);
    }
  }

  /** The position (hundredths of a cell) at a point of the canvas's client area, e.g. a click. */
  positionAt(clientX: number, clientY: number): world.Pos {
    const rect = this.canvas.getBoundingClientRect();
    const x = ((clientX - rect.left) * this.canvas.width) / rect.width;
    const y = ((clientY - rect.top) * this.canvas.height) / rect.height;
    return { x: (x / this.scale) * world.UNITS_PER_CELL, y: (y / this.scale) * world.UNITS_PER_CELL };
  }

  private map(replica: Replica): HTMLCanvasElement | undefined {
    const map = replica.map;
    if (!map) return undefined;
    if (this.mapImage && this.mapOf === map) return this.mapImage;
    this.scale = Math.max(4, Math.floor(Math.min(this.canvas.width / map.width, this.canvas.height / map.height)));
    const image = document.createElement("canvas");
    image.width = map.width;
    image.height = map.height;
    image.getContext("2d")!.putImageData(new ImageData(mapPixels(map), map.width, map.height), 0, 0);
    this.mapImage = image;
    this.mapOf = map;
    return image;
  }

  private actor(actor: ReplicaActor, x: number, y: number, own: boolean): void {
    const ctx = this.ctx;
    const radius = Math.max(3, this.scale * 0.4);
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, Math.PI * 2);
    ctx.fillStyle = actor.kind === world.ActorKind.Npc ? "#d9d9d9" : COLOURS[actor.props.appearance % COLOURS.length]!;
    ctx.fill();
    if (own) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
    ctx.fillStyle = "#fff";
    ctx.fillText(actor.props.name, x, y - radius - 3);
  }
}

/** The map as RGBA pixels, one per cell: one pass over the cells, whatever the map's size. */
export function mapPixels(map: ZoneMap): Uint8ClampedArray<ArrayBuffer> {
  const pixels = new Uint8ClampedArray(map.cells.length * 4);
  map.cells.forEach((code, i) => {
    const rgb = CELL_RGB[code]!;
    pixels[i * 4] = rgb >> 16;
    pixels[i * 4 + 1] = (rgb >> 8) & 0xff;
    pixels[i * 4 + 2] = rgb & 0xff;
    pixels[i * 4 + 3] = 0xff;
  });
  return pixels;
}

/** Appends a line to a chat log element, keeping the newest 200. */
export function logLine(box: HTMLElement, text: string, kind = ""): void {
  const line = document.createElement("div");
  line.textContent = text;
  if (kind) line.className = kind;
  box.append(line);
  while (box.childElementCount > 200) box.firstElementChild!.remove();
  box.scrollTop = box.scrollHeight;
}

/** A chat item as the log shows it. */
export function chatLine(event: { scope: world.ChatScope; from: string; to: string; text: string }): [string, string] {
  switch (event.scope) {
    case world.ChatScope.System:
      return [`[system] ${event.text}`, "system"];
    case world.ChatScope.Whisper:
      return [`[whisper] ${event.from} → ${event.to}: ${event.text}`, "whisper"];
    case world.ChatScope.Line:
      return [`[line] ${event.from}: ${event.text}`, ""];
    default:
      return [`${event.from}: ${event.text}`, ""];
  }
}
