// The page's drawing of a zone's map: one pixel per cell in the cell's
// colour, painted in one pass and scaled when drawn (the canvas itself is
// exercised in Chromium by browser.test.ts).

import assert from "node:assert/strict";
import { test } from "node:test";
import { ZoneMap } from "../client/src/index.js";
import { mapPixels } from "../pages/view.js";

test("a map paints one pixel per cell, in its cell's colour, short rows walled", () => {
  const pixels = mapPixels(new ZoneMap("#~\n.SP"));
  const rgba = (cell: number) => [...pixels.subarray(cell * 4, cell * 4 + 4)];
  assert.equal(pixels.length, 3 * 2 * 4);
  assert.deepEqual(rgba(0), [0x4a, 0x41, 0x36, 0xff], "wall");
  assert.deepEqual(rgba(1), [0x2f, 0x66, 0x90, 0xff], "water");
  assert.deepEqual(rgba(2), [0x4a, 0x41, 0x36, 0xff], "past the short row: wall");
  assert.deepEqual(rgba(3), [0x7a, 0x9a, 0x55, 0xff], "floor");
  assert.deepEqual(rgba(4), [0x8f, 0xae, 0x62, 0xff], "spawn point");
  assert.deepEqual(rgba(5), [0xc5, 0x8c, 0xf2, 0xff], "portal");
});
