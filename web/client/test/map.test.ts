// ZoneMap against what a server may send: the same rows and walls as the
// server reads them, a clear refusal of what no server zone can be, and a
// cost linear in the map's cells (a 1024 by 1024 map once took the page
// 14 s: every cell read decoded its whole row again).

import assert from "node:assert/strict";
import { test } from "node:test";
import { DecodeError, MAX_MAP, MAX_ZONE_SIDE, ZoneMap } from "../src/index.js";

function openMap(width: number, height: number): string {
  return Array.from({ length: height }, () => ".".repeat(width)).join("\n");
}

test("rows, short rows and the outside read as the server reads them", () => {
  const map = new ZoneMap("#####   \n#S.P#\n\n#~.\n#####\n");
  assert.equal(map.width, 5);
  assert.equal(map.height, 4);
  assert.deepEqual([0, 1, 2, 3, 4].map((x) => map.cell(x, 1)).join(""), "#S.P#");
  assert.equal(map.cell(3, 2), "#", "past a short row: a wall");
  assert.equal(map.cell(-1, 0), "#");
  assert.equal(map.cell(0, 4), "#");
  assert.equal(map.blockedCell(1, 2), true, "water blocks");
  assert.equal(map.blockedCell(2, 2), false);
});

test("a map with a side beyond the server's limit, no cells or an unknown cell is refused with the reason", () => {
  const side = MAX_ZONE_SIDE;
  new ZoneMap(openMap(side, side));
  const refusals: [string, RegExp][] = [
    [openMap(side + 1, 1), /1025 cells wide: a map has 1 to 1024 cells on each side/],
    [openMap(1, side + 1), /1025 rows: a map has 1 to 1024 cells on each side/],
    // Half a million one-cell rows within the decoder's byte limit.
    ["S\n".repeat(MAX_MAP / 2), /524800 rows/],
    ["  \n\n", /0 rows/],
    ["#S.\n#x#", /unknown map cell "x" at column 1, row 1: the legend is # ~ \. S P/],
  ];
  for (const [text, reason] of refusals) {
    assert.throws(() => new ZoneMap(text), (e: unknown) => e instanceof DecodeError && reason.test(e.message));
  }
});

/** Milliseconds to read a map and every one of its cells (what drawing it costs), the best of three. */
function readEveryCell(width: number, height: number): number {
  const text = openMap(width, height);
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const started = performance.now();
    const map = new ZoneMap(text);
    let open = 0;
    for (let y = 0; y < map.height; y++) for (let x = 0; x < map.width; x++) if (!map.blockedCell(x, y)) open++;
    best = Math.min(best, performance.now() - started);
    assert.equal(open, width * height);
  }
  return best;
}

test("reading a map and all its cells costs time linear in the cells", () => {
  // Four times the cells by four times the width: linear costs 4 times
  // as much, decoding a row per cell read (as before) 16 times.
  const narrow = readEveryCell(MAX_ZONE_SIDE / 4, MAX_ZONE_SIDE);
  const largest = readEveryCell(MAX_ZONE_SIDE, MAX_ZONE_SIDE);
  console.log(`a ${MAX_ZONE_SIDE} by ${MAX_ZONE_SIDE} map read with every cell in ${largest.toFixed(1)} ms (a quarter as wide: ${narrow.toFixed(1)} ms)`);
  assert.ok(largest < narrow * 8, `${largest.toFixed(1)} ms against ${narrow.toFixed(1)} ms for a quarter of the cells`);
});
