// relay's web page: every figure on it comes from relay-out, fetched with the
// token the user pastes (kept in sessionStorage, sent only as a header).
// Decimals arrive as exact strings and are only ever formatted as strings.

const API_PREFIX = "/relay-api/v1/";
const API = `${API_PREFIX}relay-out`;
const TOKEN_KEY = "relay.token";
const INTERVALS = ["1m", "5m", "15m", "1h", "4h", "1d"];
const PAGE_SIZE = 25;

// -- the API ------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const HINTS = {
  0: "Check your connection and try again.",
  400: "Check the values entered.",
  401: "Paste a fresh relay:out token above.",
  403: "Ask for a token with the relay:out scope.",
  429: "Too many requests; wait a moment and try again.",
  503: "The service is unavailable for a moment; try again shortly.",
};

// How each source's data gets here, for the panels it leaves empty.
const FILL = {
  cmc: "run a CoinMarketCap relay-in (POST /relay-api/v1/relay-in/cmc with a relay:in token; " +
    "needs CMC_API_KEY) or start ./run demo",
  binance: "run a Binance relay-in (POST /relay-api/v1/relay-in/binance with a relay:in token; " +
    "symbols from BINANCE_SYMBOLS) or start ./run demo",
  coinbase: "run a Coinbase relay-in (POST /relay-api/v1/relay-in/coinbase with a relay:in " +
    "token; products from COINBASE_PRODUCTS) or start ./run demo",
  ecb: "run an ECB relay-in (POST /relay-api/v1/relay-in/ecb with a relay:in token; no key " +
    "needed) or start ./run demo",
};

// A readable sentence for an API failure: the API's own message without its
// status prefix ("Unauthorized: token expired" reads "Token expired."), then what to do.
export function explain(status, message) {
  const said = (message || "").replace(/^[A-Z][A-Za-z ]+: /, "");
  const base = said
    ? said.charAt(0).toUpperCase() + said.slice(1).replace(/\.?$/, ".")
    : status === 0
      ? "Cannot reach the relay API."
      : `The API answered ${status}.`;
  const hint = HINTS[status] ?? (status >= 500 ? "Something failed on the server; try again." : "");
  return hint ? `${base} ${hint}` : base;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

// A relay-out route by name ("dashboard"): the name is one percent-encoded segment.
export function routeURL(name) {
  return new URL(`${API}/${encodeURIComponent(name)}`, location.origin);
}

// A path an answer gave (a logo's), or null unless it is plainly one of this origin's
// API paths. Such paths come from upstream data: one that climbs (..), carries a query
// or leaves the prefix is refused, so no answer can make the page send the token
// elsewhere or fire another route.
export function linkURL(path) {
  if (typeof path !== "string" || !path.startsWith(API_PREFIX)) return null;
  if (/\.\.|%2e|[\\?#]|\/\//i.test(path)) return null;
  const url = new URL(path, location.origin);
  return url.origin === location.origin && url.pathname.startsWith(API_PREFIX) ? url : null;
}

async function request(url, params) {
  if (!token()) {
    throw new ApiError(401, "Paste a relay:out token above to load data.");
  }
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  let resp;
  try {
    resp = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
  } catch {
    throw new ApiError(0, explain(0, ""));
  }
  if (resp.status === 401) tokenRefused();
  return resp;
}

// GET a relay-out route; its `data`, or null for 204 (nothing matches).
async function api(route, params) {
  const resp = await request(routeURL(route), params);
  if (resp.status === 204) return null;
  let body = null;
  try {
    body = await resp.json();
  } catch {
    // not JSON: a proxy's error page, say
  }
  if (!resp.ok) throw new ApiError(resp.status, explain(resp.status, body?.message));
  if (!body || typeof body.data !== "object") {
    throw new ApiError(resp.status, "The API sent an answer this page cannot read.");
  }
  return body.data;
}

// Logos need the bearer token, so they are fetched and shown as blob: URLs.
const logos = new Map();
function logoURL(path) {
  const url = linkURL(path);
  if (!url) return Promise.resolve(null);
  if (!logos.has(url.href)) {
    logos.set(
      url.href,
      request(url).then(async (resp) => (resp.ok ? URL.createObjectURL(await resp.blob()) : null))
        .catch(() => null),
    );
  }
  return logos.get(url.href);
}

// Answers can arrive out of order (a second click before the first answer):
// each panel shows only the answer to its newest request.
const turns = new Map();
function newTurn(panel) {
  const mine = (turns.get(panel) || 0) + 1;
  turns.set(panel, mine);
  return () => turns.get(panel) === mine;
}

// -- formatting: strings in, strings out ---------------------------------------------------

// Round a decimal string half away from zero to `places` decimals, digit by digit.
export function roundDecimal(text, places) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(text));
  if (!match) return String(text);
  const [, sign, whole, fraction = ""] = match;
  const digits = (whole + fraction.slice(0, places).padEnd(places, "0")).split("").map(Number);
  if (Number(fraction[places] || 0) >= 5) {
    let i = digits.length - 1;
    while (i >= 0 && digits[i] === 9) digits[i--] = 0;
    if (i < 0) digits.unshift(1);
    else digits[i] += 1;
  }
  const all = digits.join("");
  const cut = all.length - places;
  const out = places ? `${all.slice(0, cut)}.${all.slice(cut)}` : all;
  return /[1-9]/.test(out) ? sign + out : out; // no "-0.00"
}

// Thousands separators on the whole part; the fraction is kept as given.
export function groupDigits(text) {
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(String(text));
  if (!match) return String(text);
  return match[1] + match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (match[3] || "");
}

// The one formatter for a figure the API sent: its decimal string, digit for digit, with
// thousands separators (1000.5 -> "1,000.5", 0.01234 -> "0.01234"). Never rounds. Options:
// `places` pads the fraction to at least that many decimals, dropping zeros past them
// (they hold no digit of the value: "0.50000000" -> "0.50"); `sign` writes + before a
// positive figure; `unit` follows after a space ("%", "USDT").
export function formatDecimal(text, { places = null, sign = false, unit = "" } = {}) {
  if (text === null || text === undefined || text === "") return "–";
  const match = /^([-+]?)(\d+)(?:\.(\d*))?$/.exec(String(text));
  if (!match) return String(text);
  const [, given, whole] = match;
  let fraction = match[3] || "";
  if (places !== null) fraction = fraction.replace(/0+$/, "").padEnd(places, "0");
  const zero = !/[1-9]/.test(whole + fraction);
  const minus = given === "-" && !zero ? "-" : "";
  const plus = sign && !minus && !zero ? "+" : "";
  const number = plus + minus + groupDigits(whole) + (fraction ? `.${fraction}` : "");
  return unit ? `${number} ${unit}` : number;
}

// A price: every digit, at least to the cent ("7" -> "7.00"), then its currency if given.
export function formatPrice(text, { unit = "" } = {}) {
  return formatDecimal(text, { places: 2, unit });
}

// A percentage: every digit, signed ("-4.2054" -> "-4.2054 %").
export function formatPercent(text) {
  return formatDecimal(text, { sign: true, unit: "%" });
}

// 1802345678901.25 -> "1.80 T": for narrow screens, next to the full figure (which the
// cell's tooltip also holds). Under a thousand nothing is shortened: 0.01234 stays.
export function compact(text) {
  if (text === null || text === undefined) return "–";
  const whole = String(text).replace(/^-/, "").split(".")[0].replace(/^0+(?=\d)/, "");
  const units = ["", " K", " M", " B", " T"];
  let group = Math.min(Math.floor((whole.length - 1) / 3), units.length - 1);
  if (group === 0) return formatDecimal(text);
  const scaled = (g) => {
    const digits = whole.length - g * 3;
    return roundDecimal(`${whole.slice(0, digits) || "0"}.${whole.slice(digits)}`, 2);
  };
  let shown = scaled(group);
  if (shown.split(".")[0].length > 3 && group < units.length - 1) {
    shown = scaled(++group); // 999999 rounds to 1000.00 K: it is 1.00 M
  }
  return `${String(text).startsWith("-") ? "-" : ""}${shown}${units[group]}`;
}

// A price for narrow screens: six significant digits (at least the cents), the rest in
// the tooltip: "0.000008556319952508" -> "0.00000855632", "89,753.09330874" -> "89,753.09".
export function shortPrice(text) {
  if (text === null || text === undefined) return "–";
  const match = /^-?(\d+)(?:\.(\d*))?$/.exec(String(text));
  if (!match) return formatPrice(text);
  const [, whole, fraction = ""] = match;
  const integer = whole.replace(/^0+/, "");
  const places = integer ? Math.max(2, 6 - integer.length) : /^0*/.exec(fraction)[0].length + 6;
  return formatPrice(fraction.length > places ? roundDecimal(text, places) : text);
}

// A figure in full, and shortened for narrow screens (CSS shows one); when they differ,
// the full one is the cell's tooltip.
function figureCell(full, short, extra = "") {
  const attrs = { class: `num ${extra}`.trim() };
  if (short !== full) attrs.title = full;
  return el("td", attrs,
    el("span", { class: "full", text: full }),
    el("span", { class: "short", text: short, "aria-hidden": "true" }));
}

function wholeCell(text, extra = "") {
  return figureCell(formatDecimal(text), compact(text), extra);
}

// "n coins", "1 coin".
export function plural(count, one, many = `${one}s`) {
  return `${count} ${Number(count) === 1 ? one : many}`;
}

function trend(text) {
  if (!text || /^-?0(\.0*)?$/.test(text)) return "";
  return text.startsWith("-") ? "down" : "up";
}

function formatTime(iso) {
  return iso ? iso.replace("T", " ").replace(/(:\d\d)(\.\d+)?Z$/, "$1 UTC") : "";
}

// -- small DOM helpers -------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

function showError(panel, error) {
  const box = panel.matches(".error") ? panel : $(":scope > .error", panel);
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  box.hidden = false;
  if (!(error instanceof ApiError)) console.error(error);
}

// A panel's guidance when it has nothing to show (none: hide it).
function showEmpty(panel, text) {
  const box = $(":scope > .empty", panel);
  box.textContent = text || "";
  box.hidden = !text;
}

function logoImage(path, symbol) {
  const holder = el("span", { class: "logo", "aria-hidden": "true", text: symbol.slice(0, 3) });
  if (!path) return holder;
  logoURL(path).then((src) => {
    if (!src) return;
    holder.replaceWith(el("img", { class: "logo", src, alt: "", width: "24", height: "24" }));
  });
  return holder;
}

// -- the token -----------------------------------------------------------------------------

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

function describeToken() {
  const status = $("#token-status");
  const jwt = token();
  status.classList.remove("bad");
  if (!jwt) {
    status.textContent = "No token yet: paste a relay:out token to load the data.";
    return;
  }
  const c = claims(jwt);
  if (!c) {
    status.textContent = "Token in use (its claims could not be read).";
    return;
  }
  const when = new Date(Number(c.exp) * 1000);
  const expires = Number.isNaN(when.getTime()) ? null : when.toISOString();
  status.textContent = `Token in use${c.sub ? ` for ${c.sub}` : ""}${c.scope ? `, scope ${c.scope}` : ""}${
    expires ? `, expires ${formatTime(expires)}` : ""
  }.`;
}

function tokenRefused() {
  const status = $("#token-status");
  status.textContent = "The API refused this token. Paste a fresh relay:out token.";
  status.classList.add("bad");
}

// -- the dashboard -------------------------------------------------------------------------

const board = { orderBy: "market_cap", orderType: "desc", offset: 0, only: null, date: "" };

// A change in full; on narrow screens one of more than four decimals is shortened to two
// (its tooltip keeps every digit).
function changeCell(value, extra = "") {
  const full = formatPercent(value);
  const long = /\.\d{5,}/.test(String(value ?? ""));
  const short = long ? formatPercent(roundDecimal(value, 2)) : full;
  return figureCell(full, short, `change ${trend(value)} ${extra}`);
}

// Where the page's 24h/7d/30d changes come from, as the answer says row by row.
function changesFrom(rows) {
  const from = new Set(rows.map((row) => row.changes_from).filter(Boolean));
  if (from.size === 2) return "Changes from daily closes; CoinMarketCap's own where a close is missing.";
  if (from.has("cmc_snapshot")) return "Changes as CoinMarketCap reported them in its snapshot.";
  if (from.has("daily_closes")) return "Changes from the daily closes held.";
  return "";
}

async function loadDashboard() {
  const current = newTurn("dashboard");
  const panel = $("#dashboard");
  const body = $("#dashboard-table tbody");
  panel.setAttribute("aria-busy", "true");
  try {
    const data = await api("dashboard", {
      ...(board.only ? { coin: board.only.id } : { id: "all" }),
      order_by: board.orderBy,
      order_type: board.orderType,
      limit: PAGE_SIZE,
      offset: board.offset,
      date: board.date,
    });
    if (!current()) return;
    showError(panel);
    body.replaceChildren();
    if (!data) {
      $("#dashboard-meta").textContent = $("#dashboard-changes").textContent = "";
      $("#page-info").textContent = "";
      $("#page-prev").disabled = $("#page-next").disabled = true;
      if (board.date) {
        showEmpty(panel, `No coins held on ${board.date}${board.only ? ` for ${board.only.symbol}` : ""}. ` +
          "Pick another day, or clear the date for the latest.");
      } else if (board.only) {
        showEmpty(panel, `No coin ${board.only.name} is held.`);
      } else {
        showEmpty(panel, `No coins held yet: ${FILL.cmc}.`);
        coinsHeld(false);
      }
      return;
    }
    showEmpty(panel);
    if (!board.only && !board.date) coinsHeld(true);
    data.rows.forEach((row, i) => {
      const cells = [
        el("td", { class: "num rank", text: String(board.offset + i + 1) }),
        el("td", {}, el("span", { class: "coin" }, logoImage(row.logo, row.symbol),
          el("span", { class: "name", text: row.name }), el("span", { class: "sym", text: row.symbol }))),
        figureCell(formatPrice(row.price), shortPrice(row.price)),
        changeCell(row.change_24h),
        changeCell(row.change_7d, "opt"), // "opt" columns fold away on narrow screens
        changeCell(row.change_1m, "opt"),
        wholeCell(row.volume_24h, "opt"),
        wholeCell(row.market_cap),
      ];
      body.append(el("tr", { "data-symbol": row.symbol }, ...cells));
    });
    const last = board.offset + data.rows.length;
    // CoinMarketCap's figures are in US dollars (the listings are asked for in USD)
    $("#dashboard-meta").textContent =
      `${plural(data.total, "coin")} on ${data.date} (UTC), in USD`;
    $("#dashboard-changes").textContent = changesFrom(data.rows);
    if (!board.date) $("#dashboard-date").max = data.date; // the latest day held
    $("#page-info").textContent = `${board.offset + 1}–${last} of ${data.total}`;
    $("#page-prev").disabled = board.offset === 0;
    $("#page-next").disabled = last >= data.total;
  } catch (error) {
    if (!current()) return;
    body.replaceChildren();
    showEmpty(panel);
    $("#dashboard-meta").textContent = "";
    $("#page-info").textContent = "";
    $("#page-prev").disabled = $("#page-next").disabled = true;
    showError(panel, error);
  } finally {
    if (current()) panel.removeAttribute("aria-busy");
    markSort();
  }
}

function markSort() {
  for (const th of document.querySelectorAll("#dashboard-table th[data-order]")) {
    if (th.dataset.order === board.orderBy) {
      th.setAttribute("aria-sort", board.orderType === "asc" ? "ascending" : "descending");
    } else {
      th.removeAttribute("aria-sort");
    }
  }
}

function setupDashboard() {
  for (const th of document.querySelectorAll("#dashboard-table th[data-order]")) {
    $("button", th).addEventListener("click", () => {
      const column = th.dataset.order;
      if (board.orderBy === column) {
        board.orderType = board.orderType === "asc" ? "desc" : "asc";
      } else {
        board.orderBy = column;
        board.orderType = column === "crypto" ? "asc" : "desc";
      }
      board.offset = 0;
      loadDashboard();
    });
  }
  $("#page-prev").addEventListener("click", () => {
    board.offset = Math.max(0, board.offset - PAGE_SIZE);
    loadDashboard();
  });
  $("#page-next").addEventListener("click", () => {
    board.offset += PAGE_SIZE;
    loadDashboard();
  });
  $("#dashboard-filter button").addEventListener("click", () => showOnly(null));
  $("#dashboard-date").addEventListener("change", (event) => {
    board.date = event.target.value; // empty: the latest day held
    board.offset = 0;
    loadDashboard();
  });
  markSort();
}

// One coin (a search hit: by its id, as coins may share a symbol), or null for all.
function showOnly(coin) {
  board.only = coin;
  board.offset = 0;
  const filter = $("#dashboard-filter");
  filter.hidden = !coin;
  $("strong", filter).textContent = coin ? `${coin.name} (${coin.symbol})` : "";
  loadDashboard();
}

// -- search ----------------------------------------------------------------------------------

// Whether the dashboard found any coin; when none, search says how to get them.
function coinsHeld(any) {
  showEmpty($("#search"), any ? "" : `Nothing to search yet: ${FILL.cmc}.`);
}

async function runSearch(text) {
  const panel = $("#search");
  const list = $("#search-results");
  const empty = $("#search-empty");
  const current = newTurn("search");
  if (!text.trim()) {
    list.replaceChildren();
    empty.hidden = true;
    showError(panel);
    return;
  }
  try {
    const data = await api("search", { name: text.trim() });
    if (!current()) return; // a newer search was typed meanwhile
    showError(panel);
    const results = data ? data.results : [];
    empty.hidden = results.length > 0;
    empty.textContent = `No coin matches “${text.trim()}”.`;
    list.replaceChildren(
      ...results.map((hit) => {
        const button = el("button", { type: "button", title: `Show ${hit.name} in the dashboard` },
          logoImage(hit.logo, hit.symbol), el("span", { class: "name", text: hit.name }),
          el("span", { class: "sym", text: hit.symbol }));
        button.addEventListener("click", () => {
          showOnly(hit);
          $("#dashboard").scrollIntoView({ block: "start" }); // above the search on a phone
        });
        return el("li", {}, button);
      }),
    );
  } catch (error) {
    if (!current()) return;
    list.replaceChildren();
    empty.hidden = true;
    showError(panel, error);
  }
}

function setupSearch() {
  const input = $("#search-input");
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => runSearch(input.value), 250);
  });
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    runSearch(input.value);
  });
}

// -- price, profit and candles ---------------------------------------------------------------

const market = {
  exchange: "binance", symbol: "", quote: "", interval: "1h", candles: [], candleQuote: "",
};

function exchangeName() {
  return $("#market-exchange").selectedOptions[0]?.textContent || market.exchange;
}

// The market panel and the chart with nothing to show: a failure (the same sentence in
// both, so the chart is never a blank box) or the guidance to fill them.
function marketEmpty(error) {
  market.symbol = "";
  market.quote = "";
  market.candles = [];
  $("#market-symbol").replaceChildren();
  $("#price-value").textContent = "–";
  $("#price-asof").textContent = "";
  $("#profit-unit").textContent = "";
  $("#profit-result").hidden = true;
  const guidance = error ? "" : `No ${exchangeName()} symbol is held yet: ${FILL[market.exchange]}.`;
  for (const panel of [$("#market"), $("#chart")]) {
    showError(panel, error);
    showEmpty(panel, guidance);
  }
  $("#chart-symbol").textContent = "";
  newTurn("price"); // answers still on their way belong to what was shown before
  newTurn("candles");
  drawChart();
}

const FIRST_MARKETS = ["BTCUSDT", "BTC-USD"];

async function loadSymbols() {
  const current = newTurn("symbols");
  const select = $("#market-symbol");
  try {
    const data = await api("symbols", { exchange: market.exchange });
    if (!current()) return;
    const symbols = data.symbols;
    if (!symbols.length) {
      marketEmpty();
      return;
    }
    showError($("#market"));
    showEmpty($("#market"));
    showEmpty($("#chart"));
    select.replaceChildren(...symbols.map((s) => el("option", { value: s, text: s })));
    // The market most people look for first, when it is held; else the first in order.
    const first = symbols.find((s) => FIRST_MARKETS.includes(s)) ?? symbols[0];
    market.symbol = symbols.includes(market.symbol) ? market.symbol : first;
    select.value = market.symbol;
    await Promise.all([loadPrice(), loadCandles()]);
  } catch (error) {
    if (current()) marketEmpty(error);
  }
}

async function loadPrice() {
  const current = newTurn("price");
  const panel = $("#market");
  $("#profit-result").hidden = true;
  showError($("#profit-form > .error"));
  try {
    const data = await api("price", { symbol: market.symbol, exchange: market.exchange });
    if (!current()) return;
    showError(panel);
    market.quote = data.quote || "";
    $("#price-value").replaceChildren(formatPrice(data.price),
      ...(market.quote ? [" ", el("span", { class: "unit", text: market.quote })] : []));
    $("#price-value").title = `${data.price}${market.quote ? ` ${market.quote}` : ""}`;
    $("#price-asof").textContent =
      `${data.symbol} on ${exchangeName()} as of ${formatTime(data.as_of)}`;
    $("#profit-unit").textContent = market.quote ? ` (${market.quote})` : "";
  } catch (error) {
    if (!current()) return;
    market.quote = "";
    $("#price-value").textContent = "–";
    $("#price-asof").textContent = "";
    $("#profit-unit").textContent = "";
    showError(panel, error);
  }
}

async function calculateProfit() {
  const current = newTurn("profit");
  const box = $("#profit-form > .error");
  const result = $("#profit-result");
  const value = $("#profit-value").value.trim();
  if (!market.symbol) {
    result.hidden = true;
    showError(box, new ApiError(404, `No symbol to calculate with: ${FILL[market.exchange]}.`));
    return;
  }
  if (!/^\d+(\.\d+)?$/.test(value) || /^0+(\.0+)?$/.test(value)) {
    result.hidden = true;
    showError(box, new ApiError(400, "Enter a positive amount, such as 1000 or 12.5."));
    return;
  }
  try {
    const data = await api("profit", { value, symbol: market.symbol, exchange: market.exchange });
    if (!current()) return;
    showError(box);
    for (const dd of result.querySelectorAll("dd")) {
      const field = dd.dataset.field;
      dd.textContent = field === "profit_percent"
        ? formatPercent(data[field])
        : formatPrice(data[field], { unit: data.quote || "" });
      dd.className = field.startsWith("profit") ? trend(data[field]) : "";
    }
    result.querySelector('[data-field="price_then"]').textContent +=
      ` (${formatTime(data.then)})`;
    result.hidden = false;
  } catch (error) {
    if (!current()) return;
    result.hidden = true;
    showError(box, error);
  }
}

async function loadCandles() {
  const current = newTurn("candles");
  const panel = $("#chart");
  $("#chart-symbol").textContent = market.symbol;
  for (const button of document.querySelectorAll("#chart-intervals button")) {
    button.setAttribute("aria-pressed", String(button.dataset.interval === market.interval));
  }
  if (!market.symbol) {
    drawChart();
    return;
  }
  try {
    const data = await api("candles", {
      symbol: market.symbol,
      interval: market.interval,
      exchange: market.exchange,
    });
    if (!current()) return;
    showError(panel);
    market.candles = data.candles;
    market.candleQuote = data.quote || "";
  } catch (error) {
    if (!current()) return;
    market.candles = [];
    showError(panel, error);
  }
  drawChart();
}

const SVG = "http://www.w3.org/2000/svg";

// The y axis's `steps` + 1 labels from bottom to top, all with the same number of decimals:
// enough that neighbours differ (88,000 88,750 ...; 0.600 0.614 ...). They mark positions,
// not prices, so floating point is fine here.
export function axisLabels(bottom, top, steps) {
  const step = (top - bottom) / steps;
  const places = Math.min(8, Math.max(0, 1 - Math.floor(Math.log10(step) + 1e-9)));
  return Array.from({ length: steps + 1 }, (_, i) =>
    groupDigits((bottom + step * i).toFixed(places)));
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Candlesticks drawn by hand: the figures are exact strings; only pixel
// positions use floating point.
function drawChart() {
  const chart = $("#chart-svg");
  chart.hidden = !market.candles.length; // no blank box under an error or the guidance
  const width = Math.max(chart.clientWidth, 200);
  const height = Math.max(chart.clientHeight, 160);
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const room = Math.max(10, Math.floor((width - 70) / 6));
  const candles = market.candles.slice(-room);
  const caption = $("#chart-caption");
  if (!candles.length) {
    chart.replaceChildren();
    const failed = !$("#chart > .error").hidden; // the error says why; no caption beside it
    caption.textContent = market.symbol && !failed
      ? `No ${market.interval} candles for ${market.symbol}.`
      : "";
    return;
  }
  const pad = { left: 8, right: 62, top: 10, bottom: 22 };
  const highs = candles.map((c) => Number(c.high));
  const lows = candles.map((c) => Number(c.low));
  let top = Math.max(...highs);
  let bottom = Math.min(...lows);
  if (top === bottom) {
    top += Math.abs(top) * 0.01 || 1;
    bottom -= Math.abs(bottom) * 0.01 || 1;
  }
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const y = (v) => pad.top + ((top - v) / (top - bottom)) * plotH;
  const step = plotW / candles.length;
  const body = Math.max(1, Math.min(12, step * 0.7));
  const nodes = [];
  axisLabels(bottom, top, 4).forEach((text, i) => {
    const at = y(bottom + ((top - bottom) * i) / 4);
    nodes.push(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: at, y2: at }));
    nodes.push(svg("text", { class: "axis", x: width - pad.right + 4, y: at + 4 }, text));
  });
  candles.forEach((c, i) => {
    const x = pad.left + step * i + step / 2;
    const kind = Number(c.close) >= Number(c.open) ? "up" : "down";
    const open = y(Number(c.open));
    const close = y(Number(c.close));
    const group = svg("g", { class: kind });
    group.append(
      svg("title", {}, `${formatTime(c.time)}  O ${c.open}  H ${c.high}  L ${c.low}  C ${c.close}  V ${c.volume}`),
      svg("line", { x1: x, x2: x, y1: y(Number(c.high)), y2: y(Number(c.low)) }),
      svg("rect", {
        x: x - body / 2, y: Math.min(open, close), width: body, height: Math.max(1, Math.abs(close - open)),
      }),
    );
    nodes.push(group);
  });
  const first = candles[0].time;
  const last = candles[candles.length - 1].time;
  const label = (iso) => iso.slice(5, 16).replace("T", " "); // MM-DD HH:MM, UTC
  nodes.push(svg("text", { class: "axis", x: pad.left, y: height - 6 }, label(first)));
  nodes.push(svg("text", { class: "axis", x: width - pad.right, y: height - 6, "text-anchor": "end" },
    label(last)));
  chart.replaceChildren(...nodes);
  const lastClose = candles[candles.length - 1].close;
  caption.textContent = `${plural(candles.length, `${market.interval} candle`)} of ${market.symbol}, ` +
    `${formatTime(first)} to ${formatTime(last)}; last close ${formatPrice(lastClose, { unit: market.candleQuote })}.`;
}

function setupMarket() {
  $("#market-exchange").addEventListener("change", (event) => {
    market.exchange = event.target.value;
    loadSymbols();
  });
  $("#market-symbol").addEventListener("change", (event) => {
    market.symbol = event.target.value;
    loadPrice();
    loadCandles();
  });
  $("#profit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    calculateProfit();
  });
  $("#chart-intervals").replaceChildren(
    ...INTERVALS.map((interval) => {
      const button = el("button", { type: "button", "data-interval": interval, text: interval });
      button.addEventListener("click", () => {
        market.interval = interval;
        loadCandles();
      });
      return button;
    }),
  );
  let resize = null;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(drawChart, 150);
  });
}

// -- currency converter ------------------------------------------------------------------------

async function loadCurrencies() {
  const form = $("#fx-form");
  try {
    const data = await api("rates", { date: "latest" });
    showError($(".error", form));
    showEmpty($("#fx"));
    const codes = [...new Set([data.base, ...Object.keys(data.rates)])].sort();
    for (const [select, wanted] of [[$("#fx-from"), "USD"], [$("#fx-to"), "EUR"]]) {
      const current = select.value || wanted;
      select.replaceChildren(...codes.map((code) => el("option", { value: code, text: code })));
      select.value = codes.includes(current) ? current : codes[0];
    }
    $("#fx-date").max = data.date;
  } catch (error) {
    if (error.status === 404) { // no rates held at all: say how to get them
      showError($(".error", form));
      showEmpty($("#fx"), `No ECB rates held yet: ${FILL.ecb}.`);
    } else {
      showError($(".error", form), error);
    }
  }
}

async function convert() {
  const current = newTurn("convert");
  const box = $("#fx-form .error");
  const amount = $("#fx-amount").value.trim();
  const result = $("#fx-result");
  const detail = $("#fx-detail");
  if (!/^\d+(\.\d+)?$/.test(amount)) {
    result.textContent = "";
    detail.textContent = "";
    showError(box, new ApiError(400, "Enter an amount such as 100 or 0.5."));
    return;
  }
  try {
    const data = await api("convert", {
      from: $("#fx-from").value,
      to: $("#fx-to").value,
      amount,
      date: $("#fx-date").value || "latest",
    });
    if (!current()) return;
    showError(box);
    result.textContent = `${groupDigits(data.amount)} ${data.from} = ${groupDigits(data.result)} ${data.to}`;
    // an answer that names the day asked as well as the day used says when they differ
    const asked = /^\d{4}-\d\d-\d\d$/.test(data.date_requested || "") &&
      data.date_requested !== data.date ? ` (${data.date_requested} asked)` : "";
    detail.textContent =
      `1 ${data.from} = ${data.rate} ${data.to}, ECB reference rate of ${data.date}${asked}.`;
  } catch (error) {
    if (!current()) return;
    result.textContent = "";
    detail.textContent = "";
    showError(box, error);
  }
}

function setupFX() {
  $("#fx-form").addEventListener("submit", (event) => {
    event.preventDefault();
    convert();
  });
  $("#fx-swap").addEventListener("click", () => {
    const from = $("#fx-from");
    const to = $("#fx-to");
    [from.value, to.value] = [to.value, from.value];
  });
}

// -- start -------------------------------------------------------------------------------------

function loadAll() {
  describeToken();
  if (!token()) return Promise.resolve(); // nothing can load yet; the status line says why
  return Promise.all([loadDashboard(), loadSymbols(), loadCurrencies()]);
}

// A link may carry the token in its fragment (#token=...), which never reaches a server:
// it is kept like a pasted one, and the fragment is dropped from the address bar and history.
function tokenFromFragment() {
  const match = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!match) return;
  let value = "";
  try {
    value = decodeURIComponent(match[1]).trim();
  } catch {
    // a malformed escape: no token
  }
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  history.replaceState(null, "", location.pathname + location.search);
}

function setupToken() {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#token-input");
    const value = input.value.trim().replace(/^Bearer\s+/i, "");
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    input.value = "";
    logos.clear();
    loadAll();
  });
  $("#token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload(); // the simplest way to drop every figure and logo the token fetched
  });
}

tokenFromFragment();
setupToken();
setupDashboard();
setupSearch();
setupMarket();
setupFX();
loadAll();
