// The built-in world on the game API as a picture: the zone's map and every
// player and NPC in a replica, on a canvas. The world's page draws what the
// player sees with it; the replay page draws a recording with it. Names go
// onto the canvas with fillText only.

import type { GameReplica, ZoneMap } from "../client/src/index.js";
import { UNITS_PER_CELL } from "../client/src/game/replica.js";
import { Npc, Player } from "./world.generated.js";

/** An actor in view as the page draws it: `x`, `y` in hundredths of a cell. */
export interface Being {
  id: number;
  name: string;
  npc: boolean;
  owned: boolean;
  x: number;
  y: number;
}

/** Every player and NPC in `replica`: the player's own where it predicts it, the rest where the server has them. */
export function beingsOf(replica: GameReplica): Being[] {
  const at = (id: number, owned: boolean) => (owned ? replica.position(id) : replica.serverPosition(id)) ?? { x: 0, y: 0 };
  const players = Player.all(replica).map((p) => ({ id: p.id, name: p.name, npc: false, owned: p.owned, ...at(p.id, p.owned) }));
  const npcs = Npc.all(replica).map((n) => ({ id: n.id, name: n.name, npc: true, owned: false, ...at(n.id, false) }));
  return [...npcs, ...players];
}

const CELL_COLOURS: Record<string, string> = { "#": "#4a4136", "~": "#2f6690", ".": "#7a9a55", S: "#8fae62", P: "#b48ead" };

/** A canvas that draws a zone and who is in it, the map drawn once per zone. */
export class ZoneCanvas {
  private readonly ctx: CanvasRenderingContext2D;
  private scale = 20;
  private mapImage?: HTMLCanvasElement;
  private mapOf?: ZoneMap;

  constructor(private readonly canvas: HTMLCanvasElement) {
    this.ctx = canvas.getContext("2d")!;
  }

  draw(map: ZoneMap | undefined, beings: Being[]): void {
    const ctx = this.ctx;
    ctx.fillStyle = "#2b2f26";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!map) return;
    ctx.drawImage(this.mapCanvas(map), 0, 0);
    const scale = this.scale;
    const px = (units: number) => (units / UNITS_PER_CELL) * scale;
    for (const being of beings) {
      const [x, y] = [px(being.x), px(being.y)];
      const radius = Math.max(3, scale * (being.npc ? 0.28 : 0.36));
      ctx.beginPath();
      ctx.arc(x, y, radius, 0, Math.PI * 2);
      ctx.fillStyle = being.npc ? "#c9c2b8" : being.owned ? "#3a5bd9" : "#f3c969";
      ctx.fill();
      ctx.lineWidth = being.owned ? 3 : 1;
      ctx.strokeStyle = being.owned ? "#ffffff" : "#2b2f26";
      ctx.stroke();
      if (being.npc) continue;
      ctx.font = `${Math.min(15, Math.max(10, Math.round(scale * 0.5)))}px system-ui`;
      ctx.textAlign = "center";
      ctx.textBaseline = "bottom";
      ctx.fillStyle = "#ffffff";
      ctx.fillText(`${being.name}${being.owned ? " (you)" : ""}`, x, y - radius - 2);
    }
  }

  private mapCanvas(map: ZoneMap): HTMLCanvasElement {
    if (this.mapImage && this.mapOf === map) return this.mapImage;
    this.scale = Math.max(6, Math.floor(Math.min(960 / map.width, 560 / map.height)));
    const scale = this.scale;
    this.canvas.width = map.width * scale;
    this.canvas.height = map.height * scale;
    const image = document.createElement("canvas");
    image.width = this.canvas.width;
    image.height = this.canvas.height;
    const g = image.getContext("2d")!;
    for (let y = 0; y < map.height; y++) {
      for (let x = 0; x < map.width; x++) {
        g.fillStyle = CELL_COLOURS[map.cell(x, y)] ?? "#4a4136";
        g.fillRect(x * scale, y * scale, scale, scale);
      }
    }
    this.mapImage = image;
    this.mapOf = map;
    return image;
  }
}
