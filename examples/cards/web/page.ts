// Higher's page: log in through the web API, sit down at a table over the
// WebSocket gate (both as every game's page does: web/pages/game-login.ts),
// and play with the game's generated bindings (cards.generated.ts: typed
// actors, typed messages both ways) over the client library's generic
// replica. Text that came from the server goes into the page with
// textContent only. For tests, `window.cards` holds the replica and what the
// page made of it.

import type { Connection, GameReplica } from "../../../web/client/src/index.js";
import { RELIABLE_CHANNEL, STATE_CHANNEL } from "../../../web/client/src/game/replica.js";
import { $, hiddenValues, logTo, setUpLogin } from "../../../web/pages/game-login.js";
import type { HiddenValue } from "../../../web/pages/game-login.js";
import { Seat, Table, TablePhase, VERSION, decodeMessage, newReplica, pass, play, start } from "./cards.generated.js";

/** Moves `window.cards.moves` keeps (a round has a few hundred at most). */
const MAX_MOVES = 10_000;

const RANKS = ["2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A"];
const SUITS = ["♣", "♦", "♥", "♠"];

/** A card's rank, 0 (two) to 12 (ace): the game compares these. */
function rank(card: number): number {
  return card % 13;
}

/** A card's name, e.g. `7♥` for 31 (as `cards play` names it). */
function cardName(card: number): string {
  const suit = SUITS[Math.floor(card / 13)];
  return card >= 0 && suit ? `${RANKS[rank(card)]}${suit}` : `card ${card}`;
}

/** Whether `card` may be played on `top` (-1: the top is clear). */
function beats(card: number, top: number): boolean {
  return top < 0 || rank(card) > rank(top);
}

/** A move as every client at the table sees it, in the words `cards play` prints. */
function moveText(move: { seat: number; card?: number }): string {
  return move.card === undefined ? `seat ${move.seat} passed` : `seat ${move.seat} played ${move.card} (${cardName(move.card)})`;
}

interface TableSeen {
  phase: TablePhase;
  turn: number;
  top: number;
}

/** What the page knows; `window.cards`, for tests and the curious. */
class CardsPage {
  readonly replica: GameReplica = newReplica();
  connection?: Connection;
  name = "";
  /** Every move seen, in order ("seat 1 played 31 (7♥)", "seat 0 passed"). */
  readonly moves: string[] = [];
  /** The seat that won the last round. */
  winner?: number;
  /** A round was seen starting, and it has ended. */
  roundOver = false;
  /** Seat numbers by actor id, to tell who left. */
  private readonly seatNumbers = new Map<number, number>();
  private table?: TableSeen;
  /** A move was sent and the table has not answered yet: the buttons wait. */
  private movePending?: ReturnType<typeof setTimeout>;

  mySeat(): Seat | undefined {
    return Seat.all(this.replica).find((seat) => seat.owned);
  }

  tableActor(): Table | undefined {
    return Table.all(this.replica)[0];
  }

  myTurn(): boolean {
    const table = this.tableActor();
    const mine = this.mySeat();
    return !!table && !!mine && table.phase === "playing" && table.turn === mine.number;
  }

  /** Every seat as the page sees it (another's hand is never known: empty). */
  seats(): { number: number; owned: boolean; handSize: number; hand: number[]; wins: number }[] {
    return Seat.all(this.replica)
      .map((seat) => ({ number: seat.number, owned: seat.owned, handSize: seat.handSize, hand: [...seat.hand], wins: seat.wins }))
      .sort((a, b) => a.number - b.number);
  }

  /**
   * The owner-only and server-only properties of every actor this player
   * does not own, with whether the replica holds only their type's default
   * (nothing was ever received for them): read from the schema, for any kind.
   */
  hidden(): HiddenValue[] {
    return hiddenValues(this.replica);
  }

  /** Sends a message the bindings encoded; the buttons wait for the table's answer (or a second and a half). */
  send(message: Uint8Array, isMove: boolean): void {
    if (!this.connection) return;
    this.connection.send(RELIABLE_CHANNEL, message);
    if (isMove) {
      clearTimeout(this.movePending);
      this.movePending = setTimeout(() => {
        this.movePending = undefined;
        render();
      }, 1500);
      render();
    }
  }

  get waitingForTable(): boolean {
    return this.movePending !== undefined;
  }

  /** Applies what arrived on a game channel; false (and the session is closed) when it does not apply. */
  receive(channel: number, payload: Uint8Array): boolean {
    try {
      if (channel === RELIABLE_CHANNEL) this.replica.applyReliable(payload);
      else if (channel === STATE_CHANNEL) this.replica.applyFrame(payload);
      else return true;
    } catch (e) {
      // The server never sends what does not apply: a bug worth closing over.
      this.connection?.close(`a game message did not apply: ${(e as Error).message}`);
      return false;
    }
    if (channel === RELIABLE_CHANNEL && this.movePending !== undefined) {
      clearTimeout(this.movePending);
      this.movePending = undefined;
    }
    this.tell();
    const ack = this.replica.pollAck();
    if (ack) this.connection?.send(STATE_CHANNEL, ack);
    return true;
  }

  /** Reads the events of what was just applied and the table after it, into the log (the same rules as `cards play`). */
  private tell(): void {
    const playedBy: number[] = [];
    const left: number[] = [];
    for (let event = this.replica.pollEvent(); event; event = this.replica.pollEvent()) {
      if (event.type === "spawned") {
        const seat = Seat.get(this.replica, event.id);
        if (seat) {
          this.seatNumbers.set(event.id, seat.number);
          log(`${seat.owned ? "you sit" : "a player sits"} at seat ${seat.number} (${plural(seat.wins, "win")})`, "system");
        }
      } else if (event.type === "despawned") {
        const number = this.seatNumbers.get(event.id);
        if (number !== undefined) {
          this.seatNumbers.delete(event.id);
          left.push(number);
          log(`seat ${number} left`, "system");
        }
      } else if (event.type === "message") {
        const message = decodeMessage(event);
        if (message?.type === "played") {
          playedBy.push(message.seat);
          this.recordMove({ seat: message.seat, card: message.card });
        } else if (message?.type === "refused") {
          log(`refused: ${message.reason}`, "refused");
        } else if (message?.type === "won") {
          this.winner = message.seat;
          log(message.seat === this.mySeat()?.number ? `you won the round (seat ${message.seat})` : `seat ${message.seat} won the round`, "system");
        }
      }
    }
    const table = this.tableActor();
    if (table) {
      const now: TableSeen = { phase: table.phase, turn: table.turn, top: table.top };
      const before = this.table;
      this.table = now;
      const wasPlaying = before?.phase === "playing";
      if (now.phase === "playing" && !wasPlaying) {
        this.roundOver = false;
        this.winner = undefined;
        log(`${before ? "a round starts" : "a round is being played"}: ${cardName(now.top)} on top, ${table.deckLeft} cards in the deck`, "system");
      }
      if (before?.phase === "playing" && now.phase === "playing") {
        if (now.turn !== before.turn && before.turn >= 0 && !playedBy.includes(before.turn) && !left.includes(before.turn)) {
          this.recordMove({ seat: before.turn });
        }
        if (now.top < 0 && before.top >= 0) log("everyone passed: the top is clear, any card may be played", "system");
      }
      if (wasPlaying && now.phase !== "playing") {
        this.roundOver = true;
        if (this.winner === undefined) log("the round ended without a winner", "system");
      }
    }
  }

  private recordMove(move: { seat: number; card?: number }): void {
    const text = moveText(move);
    if (this.moves.length >= MAX_MOVES) this.moves.shift();
    this.moves.push(text);
    log(text, move.seat === this.mySeat()?.number ? "mine" : "");
  }
}

const cards = new CardsPage();
(window as unknown as { cards: CardsPage }).cards = cards;

function log(text: string, kind = ""): void {
  logTo("log", text, kind);
}

/** A card's face: its name, red for diamonds and hearts. */
function cardFace<T extends HTMLElement>(element: T, card: number): T {
  element.textContent = cardName(card);
  element.classList.add("card");
  element.classList.toggle("red", Math.floor(card / 13) === 1 || Math.floor(card / 13) === 2);
  element.dataset.card = String(card);
  return element;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}

/** Draws the table, the seats and the hand from the replica. */
function render(): void {
  const table = cards.tableActor();
  const mine = cards.mySeat();
  const seats = cards.seats();
  const top = $("top");
  top.className = "card big";
  delete top.dataset.card;
  if (table && table.top >= 0) cardFace(top, table.top);
  else {
    top.textContent = "clear";
    top.classList.add("empty");
  }
  $("phase").textContent = table?.phase ?? "–";
  $("turn").textContent = !table || table.turn < 0 ? "–" : table.turn === mine?.number ? "yours" : `seat ${table.turn}`;
  $("deck").textContent = table ? plural(table.deckLeft, "card") : "–";

  $("seats").replaceChildren(
    ...seats.map((seat) => {
      const item = document.createElement("li");
      item.dataset.testid = `seat-${seat.number}`;
      item.classList.toggle("mine", seat.owned);
      item.classList.toggle("turn", table?.phase === "playing" && table.turn === seat.number);
      item.textContent = `seat ${seat.number}${seat.owned ? " (you)" : ""} · ${plural(seat.wins, "win")} · ${plural(seat.handSize, "card")}`;
      if (!seat.owned && seat.handSize > 0) {
        // Another player's hand: how many cards, never which.
        const backs = document.createElement("span");
        backs.className = "backs";
        backs.append(...Array.from({ length: seat.handSize }, () => Object.assign(document.createElement("span"), { className: "back" })));
        item.append(backs);
      }
      return item;
    }),
  );

  const myTurn = cards.myTurn() && !cards.waitingForTable;
  const topCard = table?.top ?? -1;
  const hand = [...(mine?.hand ?? [])].sort((a, b) => rank(a) - rank(b) || a - b);
  $("hand").replaceChildren(
    ...hand.map((card) => {
      const button = cardFace(document.createElement("button"), card);
      button.dataset.testid = "card";
      button.disabled = !(myTurn && beats(card, topCard));
      button.title = beats(card, topCard) ? `play ${cardName(card)}` : `${cardName(card)} does not beat ${cardName(topCard)}`;
      button.addEventListener("click", () => cards.send(play(cards.replica, { card }), true));
      return button;
    }),
  );
  $<HTMLButtonElement>("pass").disabled = !myTurn;
  $<HTMLButtonElement>("start").disabled = !table || table.phase === "playing" || seats.length < 2;

  let prompt = "";
  if (!table || !mine) prompt = "taking a seat…";
  else if (table.phase === "playing") {
    if (table.turn !== mine.number) prompt = `seat ${table.turn} is playing…`;
    else if (hand.some((card) => beats(card, topCard))) prompt = "your turn: play a higher card, or pass and draw";
    else prompt = "your turn: nothing beats the top, pass and draw";
  } else if (seats.length < 2) prompt = "waiting for another player to sit down";
  else if (cards.winner !== undefined) prompt = cards.winner === mine.number ? "you won! start another round?" : `seat ${cards.winner} won. Start another round?`;
  else prompt = "start a round when everyone is seated";
  $("prompt").textContent = prompt;
}

setUpLogin({
  version: VERSION,
  panel: "table-panel",
  connecting(connection: Connection) {
    cards.connection = connection;
  },
  message(channel, payload) {
    if (cards.receive(channel, payload)) render();
  },
  joined(name) {
    cards.name = name;
    render();
  },
  closed(why) {
    log(`disconnected: ${why}`, "system");
    render();
  },
});
$("pass").addEventListener("click", () => cards.send(pass(cards.replica), true));
$("start").addEventListener("click", () => cards.send(start(cards.replica), false));
