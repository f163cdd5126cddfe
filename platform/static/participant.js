// The participant's pages talk to the JSON API (DESIGN.md); this file is their only script.
// Answers are sent the moment they are given and retried with the same response_id until the server
// confirms, so a double click or a lost reply never stores an answer twice, and a reload resends an
// answer that was not yet confirmed.
"use strict";

const CultureLab = (() => {
  const $ = (id) => document.getElementById(id);
  const readData = (id) => JSON.parse($(id).textContent);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // One API call. Network failures and 5xx are retried (the calls are idempotent); 4xx come back.
  async function call(method, url, body, onRetry) {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(url, {
          method,
          headers: body === undefined ? {} : { "Content-Type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        if (res.status < 500) return { status: res.status, json: await res.json() };
      } catch (e) {
        // fall through to the retry
      }
      if (onRetry) onRetry(attempt);
      await sleep(Math.min(8000, 500 * 2 ** attempt));
    }
  }

  function start() {
    const d = readData("start-data");
    const key = `culturelab:${d.slug}`;
    const known = localStorage.getItem(key);
    // Reopening the plain link resumes where the participant left off; recruitment ids resume server-side.
    if (known && !d.start.external_id) {
      location.replace(d.page.replace("TOKEN", known));
      return;
    }
    document.querySelectorAll("[data-language]").forEach((button) =>
      button.addEventListener("click", async () => {
        button.disabled = true;
        const language = button.dataset.language;
        const body = { source: d.start.source, language, recruitment: d.start.recruitment };
        if (d.start.external_id) body.external_id = d.start.external_id;
        const { status, json } = await call("POST", d.api, body);
        if (status >= 400) {
          showError(json.error.message);
          button.disabled = false;
          return;
        }
        if (json.resume) await call("POST", `${d.api.replace(/studies\/.*$/, "participants/")}${json.token}/language`, { language });
        localStorage.setItem(key, json.token);
        location.assign(d.page.replace("TOKEN", json.token));
      })
    );
  }

  function page() {
    return readData("page-data");
  }

  function consent() {
    const d = page();
    const send = async (value) => {
      const { status, json } = await call("POST", `${d.api}/consent`, { consent: value });
      if (status >= 400) return showError(json.error.message);
      location.reload();
    };
    $("consent-yes").addEventListener("click", () => send(true));
    $("consent-no").addEventListener("click", () => send(false));
  }

  function background() {
    const d = page();
    const form = $("background");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      const body = {};
      if (!f.get("culture_group")) return showError(form.querySelector("legend").textContent);
      body.culture_group = f.get("culture_group");
      for (const name of ["country_of_birth", "country_of_residence", "gender"]) {
        if (f.get(name)) body[name] = String(f.get(name)).trim();
      }
      for (const name of ["age", "art_training"]) {
        if (f.get(name) !== null && f.get(name) !== "") body[name] = Number(f.get(name));
      }
      const languages = f.getAll("languages");
      if (languages.length) body.languages = languages;
      form.querySelector("button[type=submit]").disabled = true;
      const { status, json } = await call("POST", `${d.api}/background`, body);
      if (status >= 400 && json.error.code !== "quota_full") {
        form.querySelector("button[type=submit]").disabled = false;
        return showError(json.error.message);
      }
      location.reload();
    });
  }

  // A neutral image for the practice trial, so that no study image is seen before its own trial.
  function practiceImage() {
    const c = document.createElement("canvas");
    c.width = c.height = 128;
    const g = c.getContext("2d");
    g.fillStyle = "#d9d9d9";
    g.fillRect(0, 0, 128, 128);
    g.strokeStyle = "#9a9a9a";
    g.lineWidth = 6;
    g.strokeRect(24, 24, 80, 80);
    return c.toDataURL();
  }

  function trials(withPractice) {
    const d = page();
    const pendingKey = `culturelab:pending:${d.token}`;
    let busy = false;

    const loadImages = (urls) =>
      Promise.all(
        urls.map(
          (url) =>
            new Promise((resolve) => {
              const img = new Image();
              img.onload = img.onerror = () => resolve(img);
              img.src = url;
            })
        )
      );

    function renderTrial(trial, onAnswer, isPractice) {
      $("instructions").hidden = true;
      $("trial").hidden = false;
      $("status").textContent = "";
      $("question").textContent = trial.question.text;
      $("counter").textContent = isPractice ? "" : d.text.progress.replace("{i}", trial.index + 1).replace("{n}", trial.total);
      $("bar").style.width = isPractice ? "0%" : `${(100 * trial.index) / trial.total}%`;
      const images = $("images");
      const answer = $("answer");
      images.replaceChildren();
      answer.replaceChildren();
      images.className = `images n${trial.stimuli.length}`;
      let shownAt = null;
      let done = false;
      const give = (value) => {
        if (done || shownAt === null) return;
        done = true;
        document.removeEventListener("keydown", onKey);
        answer.querySelectorAll("button, input").forEach((el) => (el.disabled = true));
        onAnswer(value, Math.round(performance.now() - shownAt));
      };
      let onKey = () => {};
      loadImages(trial.stimuli.map((s) => s.url)).then((loaded) => {
        loaded.forEach((img, i) => {
          img.alt = "";
          if (trial.kind === "choice") {
            const b = document.createElement("button");
            b.type = "button";
            b.className = "pick";
            b.setAttribute("aria-label", i === 0 ? d.text.left : d.text.right);
            b.append(img);
            b.addEventListener("click", () => give(i));
            images.append(b);
          } else {
            images.append(img);
          }
        });
        shownAt = performance.now();
      });
      const { min, max, labels } = trial.question.scale || {};
      if (trial.kind === "likert" || trial.kind === "attention") {
        const row = document.createElement("div");
        row.className = "likert";
        for (let v = min; v <= max; v++) {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = v;
          b.dataset.value = v;
          b.addEventListener("click", () => give(v));
          row.append(b);
        }
        answer.append(row);
        if (labels) answer.append(anchors(labels));
        onKey = (e) => {
          const k = Number(e.key);
          if (max - min < 9 && k >= 1 && k <= max - min + 1) give(min + k - 1);
        };
      } else if (trial.kind === "slider") {
        const input = document.createElement("input");
        input.type = "range";
        input.min = 0;
        input.max = 100;
        input.value = 50;
        input.className = "slider untouched";
        const go = document.createElement("button");
        go.type = "button";
        go.className = "big primary";
        go.textContent = "→";
        go.disabled = true;
        $("status").textContent = d.text.move_slider;
        // The value must be moved before it can be submitted: an untouched 50 is not an answer.
        input.addEventListener("input", () => {
          input.classList.remove("untouched");
          go.disabled = false;
          $("status").textContent = "";
        });
        go.addEventListener("click", () => give(Number(input.value)));
        answer.append(input);
        if (labels) answer.append(anchors(labels));
        answer.append(go);
        onKey = (e) => {
          if (e.key === "Enter" && !go.disabled) give(Number(input.value));
        };
      } else if (trial.kind === "choice") {
        onKey = (e) => {
          if (e.key === "ArrowLeft") give(0);
          if (e.key === "ArrowRight") give(1);
        };
      }
      document.addEventListener("keydown", onKey);
    }

    function anchors(labels) {
      const row = document.createElement("div");
      row.className = "anchors";
      labels.forEach((text) => {
        const span = document.createElement("span");
        span.textContent = text;
        row.append(span);
      });
      return row;
    }

    function preload(next) {
      (next.preload || []).forEach((url) => {
        new Image().src = url;
      });
    }

    async function send(answer) {
      localStorage.setItem(pendingKey, JSON.stringify(answer));
      const { status, json } = await call("POST", `${d.api}/responses`, answer, () => {
        $("status").textContent = d.text.network;
      });
      localStorage.removeItem(pendingKey);
      if (status === 200 || status === 201) return json.next;
      if (status === 409) return (await call("GET", `${d.api}/next`)).json; // resynchronise
      showError(json.error ? json.error.message : d.text.error);
      return null;
    }

    function show(next) {
      if (!next) return;
      if (next.done) {
        location.reload();
        return;
      }
      preload(next);
      renderTrial(next.trial, async (value, rt) => {
        show(await send({ trial_id: next.trial.id, response_id: uuid4(), value, rt_ms: rt }));
      });
    }

    async function begin() {
      const pending = localStorage.getItem(pendingKey);
      if (pending) await send(JSON.parse(pending));
      const { status, json } = await call("GET", `${d.api}/next`);
      if (status >= 400) return showError(json.error.message);
      if (json.done) return location.reload();
      if (json.trial.index > 0) return show(json); // resuming: no instructions again
      $("instructions").hidden = false;
      $("begin").addEventListener("click", () => {
        if (!withPractice) return show(json);
        const practice = { ...json.trial, stimuli: json.trial.stimuli.map(() => ({ url: practiceImage() })) };
        renderTrial(practice, () => {
          $("status").textContent = d.text.practice_done;
          setTimeout(() => show(json), 1200);
        }, true);
      });
    }
    begin();
  }

  function done(redirectUrl) {
    const d = page();
    localStorage.removeItem(`culturelab:${d.slug}`);
    if (redirectUrl) setTimeout(() => location.assign(redirectUrl), 5000);
  }

  function ended() {
    localStorage.removeItem(`culturelab:${page().slug}`);
  }

  return { start, consent, background, trials, done, ended };
})();
