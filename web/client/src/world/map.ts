// A zone's map as the client sees it (the map text of the world's joined,
// read as crates/hearth-replica/src/zone.rs reads it): which cells block,
// where the portals are, and the same wall test as the server's, so that
// prediction stops where the server would.

import { DecodeError } from "../bytes.js";
import { UNITS_PER_CELL } from "../game/replica.js";

/** Largest zone side, in cells, as the server's zones are bounded (MAX_ZONE_SIDE of crates/hearth-replica/src/zone.rs). */
export const MAX_ZONE_SIDE = 1024;
/** Largest map text a server sends: MAX_ZONE_SIDE rows of MAX_ZONE_SIDE cells and a newline (MAX_MAP_BYTES of crates/hearth-replica/src/game_wire.rs). */
export const MAX_MAP = MAX_ZONE_SIDE * (MAX_ZONE_SIDE + 1);

/** Positions are in hundredths of a cell; cell (cx, cy)'s centre is (100·cx + 50, 100·cy + 50). */
export interface Pos {
  x: number;
  y: number;
}

/** The map legend: wall, water, floor, spawn point, portal. A cell's code is its index here. */
export const MAP_LEGEND = "#~.SP";
const WALL = 0;
const WATER = 1;

export class ZoneMap {
  readonly width: number;
  readonly height: number;
  /**
   * Every cell's code (its index in MAP_LEGEND), row after row, `width` to a
   * row: the text is decoded once, so reading a cell costs the same on any
   * map. Past the end of a short row, a wall.
   */
  readonly cells: Uint8Array;

  /**
   * Reads a map as the server's zones are written (rows separated by `\n`,
   * trailing blanks and empty rows ignored), refusing what no server zone
   * can be: more than MAX_ZONE_SIDE cells on a side, or a cell outside the
   * legend. A malicious server's map costs time linear in its size.
   */
  constructor(text: string) {
    const rows = text
      .split("\n")
      .map((row) => row.trimEnd())
      .filter((row) => row.length > 0);
    const fits = (cells: number) => cells >= 1 && cells <= MAX_ZONE_SIDE;
    if (!fits(rows.length)) throw new DecodeError(`the zone's map has ${rows.length} rows: a map has 1 to ${MAX_ZONE_SIDE} cells on each side`);
    // Code points, as the server counts them.
    const decoded = rows.map((row) => [...row]);
    this.height = rows.length;
    this.width = decoded.reduce((widest, row) => Math.max(widest, row.length), 0);
    if (!fits(this.width)) throw new DecodeError(`the zone's map is ${this.width} cells wide: a map has 1 to ${MAX_ZONE_SIDE} cells on each side`);
    this.cells = new Uint8Array(this.width * this.height).fill(WALL);
    decoded.forEach((row, y) => {
      row.forEach((cell, x) => {
        const code = MAP_LEGEND.indexOf(cell);
        if (code < 0) {
          throw new DecodeError(`unknown map cell ${JSON.stringify(cell)} at column ${x}, row ${y}: the legend is ${[...MAP_LEGEND].join(" ")}`);
        }
        this.cells[y * this.width + x] = code;
      });
    });
  }

  /** The cell's character; outside the map and past a short row, a wall. */
  cell(cx: number, cy: number): string {
    return MAP_LEGEND[this.code(cx, cy)]!;
  }

  blockedCell(cx: number, cy: number): boolean {
    const code = this.code(cx, cy);
    return code === WALL || code === WATER;
  }

  private code(cx: number, cy: number): number {
    if (cx < 0 || cy < 0 || cx >= this.width || cy >= this.height) return WALL;
    return this.cells[cy * this.width + cx]!;
  }

  /**
   * Whether a straight walk stays on open cells: every cell the segment
   * touches, and both cells beside a corner it passes exactly through (the
   * server's rule, in the same integer arithmetic).
   */
  pathClear(from: Pos, to: Pos): boolean {
    const unit = UNITS_PER_CELL;
    let [cx, cy] = cellOf(from);
    const [endX, endY] = cellOf(to);
    if (this.blockedCell(cx, cy)) return false;
    const dx = to.x - from.x;
    const dy = to.y - from.y;
    const stepX = dx > 0 ? 1 : -1;
    const stepY = dy > 0 ? 1 : -1;
    const boundary = (cell: number, step: number) => (step > 0 ? cell + 1 : cell) * unit;
    const cells = Math.abs(endX - cx) + Math.abs(endY - cy);
    for (let i = 0; i < cells; i++) {
      const toX = dx === 0 ? undefined : Math.abs(boundary(cx, stepX) - from.x);
      const toY = dy === 0 ? undefined : Math.abs(boundary(cy, stepY) - from.y);
      let order: number;
      if (toX !== undefined && toY !== undefined) {
        // Products of positions stay far below 2^53 for any legal map.
        order = Math.sign(toX * Math.abs(dy) - toY * Math.abs(dx));
      } else if (toX !== undefined) order = -1;
      else if (toY !== undefined) order = 1;
      else return true;
      if (order < 0) cx += stepX;
      else if (order > 0) cy += stepY;
      else {
        if (this.blockedCell(cx + stepX, cy) || this.blockedCell(cx, cy + stepY)) return false;
        cx += stepX;
        cy += stepY;
      }
      if (this.blockedCell(cx, cy)) return false;
      if (cx === endX && cy === endY) break;
    }
    return true;
  }
}

export function cellOf(pos: Pos): [number, number] {
  return [Math.floor(pos.x / UNITS_PER_CELL), Math.floor(pos.y / UNITS_PER_CELL)];
}

export function cellCentre(cx: number, cy: number): Pos {
  return { x: cx * UNITS_PER_CELL + 50, y: cy * UNITS_PER_CELL + 50 };
}

/** Integer distance (floor of the square root), as the server computes it. */
export function distance(a: Pos, b: Pos): number {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const squared = dx * dx + dy * dy;
  let root = Math.floor(Math.sqrt(squared));
  while (root * root > squared) root--;
  while ((root + 1) * (root + 1) <= squared) root++;
  return root;
}

/** One step of at most `step` units towards `target`, rounded towards `from` as the server does. */
export function stepTowards(from: Pos, target: Pos, step: number): Pos {
  const d = distance(from, target);
  if (d <= step || d === 0) return { ...target };
  return {
    x: from.x + Math.trunc(((target.x - from.x) * step) / d),
    y: from.y + Math.trunc(((target.y - from.y) * step) / d),
  };
}
