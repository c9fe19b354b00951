// The office page: looks a person up through the API with the token kept in
// sessionStorage. Plain DOM, no build step; every value is set as text.
"use strict";

const STATES = {
  not_registered: ["未参保登记", "not registered"],
  registered_unpaid: ["未缴费", "registered, unpaid"],
  pending: ["待处理", "pending"],
  partially_paid: ["部分缴费", "partially paid"],
  received: ["已到账", "received"],
  overpaid: ["多缴", "overpaid"],
  refunded_to_source: ["已退回原渠道", "refunded to source"],
  void: ["作废", "void"],
  awaiting_policy: ["待政策公布", "awaiting policy"],
};

const SOURCES = [
  ["by_self", "本人缴费 self"],
  ["by_other", "他人代缴 paid by another person"],
  ["by_collector", "代收代办 collector"],
  ["by_proxy", "职工医保个人账户代缴 employee account (proxy)"],
];

const TOKEN_KEY = "yibao.token";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function yuan(amount) {
  return amount === null || amount === undefined ? "未知 unknown" : "¥" + amount;
}

function isZero(amount) {
  return amount === null || amount === undefined || Number(amount) === 0;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearResults() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("card").hidden = true;
  $("card").replaceChildren();
  $("history").hidden = true;
  $("history").replaceChildren();
  $("print").disabled = true;
}

async function api(path, token, asText) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  let response;
  try {
    response = await fetch(path, { headers, cache: "no-store" });
  } catch (e) {
    throw new Error("无法连接服务器 cannot reach the server: " + e.message);
  }
  if (asText && response.ok) return response.text();
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.message ? body.message : "HTTP " + response.status;
    const prefix = {
      400: "输入有误 bad input",
      401: "令牌无效 token missing or unknown",
      403: "无权限 not allowed",
      404: "查无此人 not found",
      422: "不能办理 refused",
    }[response.status];
    throw new Error((prefix ? prefix + ": " : "") + message);
  }
  return body;
}

function stateBadge(state) {
  const [zh, en] = STATES[state] || [state, state];
  return el("span", { class: "state " + state, "data-state": state }, zh + " " + en);
}

function yearSection(entry) {
  const y = entry.year;
  const rows = [
    ["参保年度 Coverage year", y.coverage_year],
    ["状态 State", stateBadge(y.state)],
    ["待遇期 Covered", y.covered_from && y.covered_until
      ? y.covered_from + " 至 to " + y.covered_until : "未享受待遇 not covered"],
  ];
  if (entry.covered_on) {
    const [day, covered] = entry.covered_on;
    rows.push([day + " 是否享受待遇 covered on", covered ? "是 yes" : "否 NO"]);
  }
  rows.push(["应缴 Amount due", yuan(y.amount_due)]);
  if (!isZero(y.subsidy_due)) rows.push(["资助 Subsidy due", yuan(y.subsidy_due)]);
  rows.push(["实收 Received (net)", yuan(y.net_received)]);
  rows.push(["欠缴 Outstanding", yuan(y.outstanding === null ? "0.00" : y.outstanding)]);
  if (!isZero(y.excess)) rows.push(["多缴 Excess", yuan(y.excess)]);
  const paid = y.paid || {};
  for (const [key, label] of SOURCES) {
    if (!isZero(paid[key])) rows.push([label, yuan(paid[key])]);
  }
  for (const [funder, amount] of Object.entries(paid.subsidy || {})) {
    rows.push(["资助参保 subsidy from " + funder, yuan(amount)]);
  }
  if (y.refunds && !isZero(y.refunds.total)) rows.push(["已退费 Refunded", yuan(y.refunds.total)]);
  if (!isZero(y.in_flight)) rows.push(["代缴在途 In flight (proxy)", yuan(y.in_flight)]);
  if (!isZero(y.proxy_returned)) rows.push(["代缴退回 Proxy returned", yuan(y.proxy_returned)]);
  if (y.awaiting) rows.push(["待政策公布 Awaiting policy", y.awaiting]);
  const list = el("dl");
  for (const [label, value] of rows) list.append(el("dt", null, label), el("dd", null, value));
  const section = el("div", { class: "year" }, el("h3", null, y.coverage_year + " 年度 ", el("small", null, "coverage year")), list);
  if (y.state === "received") {
    const button = el("button", { type: "button", class: "certificate no-print", "data-certificate": y.coverage_year },
      "缴费证明 Payment certificate");
    button.addEventListener("click", () => openCertificate(y.coverage_year));
    section.append(button);
  }
  if (y.notes && y.notes.length) {
    const notes = el("ul", { class: "notes" });
    for (const note of y.notes) notes.append(el("li", null, note));
    section.append(notes);
  }
  return section;
}

function renderCard(answer) {
  const p = answer.person;
  const card = $("card");
  const who = el("dl");
  for (const [label, value] of [
    ["身份证号 ID", p.id],
    ["姓名 Name", p.name || "未登记 not registered"],
    ["参保地 Region", p.region || "-"],
    ["登记日期 Registered on", p.registered_on || "-"],
  ]) who.append(el("dt", null, label), el("dd", null, value));
  if (p.former && p.former.length) who.append(el("dt", null, "曾用证件 Formerly"), el("dd", null, p.former.join(", ")));
  if (p.voided_on) who.append(el("dt", null, "作废 Voided on"), el("dd", null, p.voided_on));
  card.append(el("h2", null, "参保缴费凭单 ", el("small", null, "Coverage card")), who);
  if (!answer.years.length) card.append(el("p", null, "无参保年度记录 no coverage year recorded"));
  for (const entry of answer.years) card.append(yearSection(entry));
  card.append(el("p", { class: "meta" },
    "日志位置 log position " + answer.log_position + " · head " + answer.head_hash.slice(0, 16) +
    " · 打印时间 printed " + new Date().toLocaleString("zh-CN")));
  card.hidden = false;
  $("print").disabled = false;
}

// The certificate (HTML with its data block) in a new tab, to print.
async function openCertificate(year) {
  const id = encodeURIComponent($("id").value.trim());
  const tab = window.open("", "_blank");
  try {
    const html = await api("/v1/certificates/" + id + "/" + year, $("token").value.trim(), true);
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    if (tab) tab.location = url; else window.location = url;
  } catch (e) {
    if (tab) tab.close();
    showError(e.message);
  }
}

const PROXY_STATES = {
  submitted: "申请成功 submitted",
  processing: "受理中 processing",
  credited: "缴费到账成功 credited",
  failed: "受理失败 failed",
  returned: "原渠道返还 returned",
};

// The person's proxy applications (代缴申请), in flight first.
function renderApplications(family) {
  const applications = family.applications || [];
  if (!applications.length) return;
  const inFlight = (a) => a.state === "submitted" || a.state === "processing";
  applications.sort((a, b) => Number(inFlight(b)) - Number(inFlight(a)));
  const table = el("table", { class: "applications" },
    el("thead", null, el("tr", null, el("th", null, "申请 Application"), el("th", null, "年度 Year"),
      el("th", null, "授权人 Holder"), el("th", null, "金额 Amount"), el("th", null, "状态 State"))));
  const body = el("tbody");
  for (const a of applications) {
    body.append(el("tr", { "data-proxy-state": a.state }, el("td", null, a.application_id), el("td", null, a.coverage_year),
      el("td", null, a.holder), el("td", null, yuan(a.amount)), el("td", null, PROXY_STATES[a.state] || a.state)));
  }
  table.append(body);
  const pending = applications.filter(inFlight).length;
  const heading = el("h3", null, "代缴申请 ", el("small", null, "Proxy applications"),
    pending ? el("span", { class: "state pending" }, pending + " 笔在途 in flight") : null);
  // Above the card's closing line (log position, time printed).
  const meta = $("card").querySelector(".meta");
  $("card").insertBefore(heading, meta);
  $("card").insertBefore(table, meta);
}

function renderHistory(history) {
  const section = $("history");
  const table = el("table", null,
    el("thead", null, el("tr", null, el("th", null, "#"), el("th", null, "记录时间 Recorded"),
      el("th", null, "类型 Type"), el("th", null, "摘要 Summary"))));
  const body = el("tbody");
  for (const fact of history.facts) {
    body.append(el("tr", null, el("td", null, fact.position), el("td", null, fact.recorded_at),
      el("td", null, fact.type), el("td", null, fact.summary)));
  }
  table.append(body);
  section.append(el("h2", null, "历史记录 ", el("small", null, "History")), table);
  section.hidden = false;
}

async function search(id, on, token) {
  clearResults();
  id = id.trim();
  if (!id) {
    showError("请输入身份证号 enter an ID number");
    return;
  }
  const encoded = encodeURIComponent(id);
  const query = on ? "?on=" + encodeURIComponent(on) : "";
  $("status").textContent = "查询中 searching…";
  try {
    const coverage = await api("/v1/coverage/" + encoded + query, token);
    renderCard(coverage);
    renderApplications(await api("/v1/family/persons/" + encoded, token));
    const history = await api("/v1/persons/" + encoded + "/history", token);
    renderHistory(history);
    $("status").textContent = "";
  } catch (e) {
    $("status").textContent = "";
    showError(e.message);
  }
}

function start() {
  const params = new URLSearchParams(window.location.search);
  const fromUrl = params.get("token");
  if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  if (params.has("id")) $("id").value = params.get("id");
  if (params.has("on")) $("on").value = params.get("on");
  if (fromUrl) {
    // The token leaves the address bar (and the browser's history).
    params.delete("token");
    const rest = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
  $("token").addEventListener("change", () => sessionStorage.setItem(TOKEN_KEY, $("token").value.trim()));
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    search($("id").value, $("on").value, token);
  });
  $("print").addEventListener("click", () => window.print());
  if ($("id").value) search($("id").value, $("on").value, $("token").value.trim());
}

start();
