// A zone's map as the client sees it (docs/WORLD.md section 4): which cells
// block, where the portals are, and the same wall test as the server's, so
// that prediction stops where the server would.

import { Pos, UNITS_PER_CELL } from "./wire.js";

export class ZoneMap {
  readonly width: number;
  readonly height: number;
  readonly rows: string[];

  constructor(text: string) {
    this.rows = text
      .split("\n")
      .map((row) => row.trimEnd())
      .filter((row) => row.length > 0);
    this.height = this.rows.length;
    this.width = Math.max(0, ...this.rows.map((row) => [...row].length));
  }

  /** The cell's character; outside the map and past a short row, a wall. */
  cell(cx: number, cy: number): string {
    if (cy < 0 || cy >= this.height || cx < 0) return "#";
    return [...this.rows[cy]!][cx] ?? "#";
  }

  blockedCell(cx: number, cy: number): boolean {
    const c = this.cell(cx, cy);
    return c === "#" || c === "~";
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
