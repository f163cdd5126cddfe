// The participant's pages talk to the JSON API (docs/contracts.md); this file is their only script.
// Answers are sent the moment they are given and retried with the same response_id until the server
// confirms, so a double click or a lost reply never stores an answer twice, and an answer that was not
// yet confirmed when the page was closed is kept in localStorage and sent again when it is reopened.
"use strict";

const CultureLab = (() => {
  const $ = (id) => document.getElementById(id);
  const readData = (id) => JSON.parse($(id).textContent);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => values[k]);

  // localStorage, where the browser allows it (some private modes refuse it): without it the page still
  // works, only resuming from the plain link and resending after a reload do not.
  const store = {
    get: (key) => {
      try {
        return localStorage.getItem(key);
      } catch (e) {
        return null;
      }
    },
    set: (key, value) => {
      try {
        localStorage.setItem(key, value);
      } catch (e) {
        // not available: see above
      }
    },
    remove: (key) => {
      try {
        localStorage.removeItem(key);
      } catch (e) {
        // not available: see above
      }
    },
  };

  function showError(message) {
    const box = $("error");
    box.textContent = message || "";
    box.hidden = !message;
    if (message) box.scrollIntoView({ block: "nearest" });
  }

  // How long the page has been hidden (another tab, a minimised window) or out of focus (another window in
  // front), as jsPsych's interaction data records it: answers given after a long absence are not the quick
  // impressions a trial asks for, and the analysis may set them aside (Contract 2's hidden_ms).
  const absence = (() => {
    let total = 0;
    let since = null;
    const away = () => document.hidden || !document.hasFocus();
    const update = () => {
      const now = performance.now();
      if (away()) {
        if (since === null) since = now;
      } else if (since !== null) {
        total += now - since;
        since = null;
      }
    };
    document.addEventListener("visibilitychange", update);
    window.addEventListener("blur", update);
    window.addEventListener("focus", update);
    return {
      // Starts counting from now (a trial's images are on screen); read(now) gives the milliseconds away
      // from then until `now` (a performance.now() reading).
      reset() {
        total = 0;
        since = away() ? performance.now() : null;
      },
      read(now) {
        return Math.round(total + (since === null ? 0 : now - since));
      },
    };
  })();

  function uuid4() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // Milliseconds before retry n + 1 of a failed request (an API call or an image): 0.5 s, doubling, at most 8 s.
  const backoff = (n) => Math.min(8000, 500 * 2 ** n);

  // One API call. Network failures, 5xx and 429 are retried with backoff (every call is idempotent);
  // other answers come back as {status, json}, json always an object. The participant's language goes
  // along (the page's, unless given), so that an error message is worded in it.
  async function call(method, url, body, onRetry, language = document.documentElement.lang) {
    const headers = { "Accept-Language": language };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await fetch(url, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          cache: "no-store",
        });
        if (res.status < 500 && res.status !== 429) {
          let json;
          try {
            json = await res.json();
          } catch (e) {
            json = { error: { code: "not_json", message: `HTTP ${res.status}` } };
          }
          return { status: res.status, json };
        }
      } catch (e) {
        // the network failed: retry below
      }
      if (onRetry) onRetry(attempt);
      await sleep(backoff(attempt));
    }
  }

  // Where an answer waits until the server has it (see the top of this file).
  const pendingKey = (token) => `culturelab:pending:${token}`;

  // The study link: choose a language, become a participant, go to the participant's own page.
  async function start() {
    const d = readData("start-data");
    const tokenKey = `culturelab:${d.slug}`;
    const whoKey = `culturelab:${d.slug}:who`;
    const known = store.get(tokenKey);
    const who = d.start.external_id || "";
    const showClosed = () => {
      $("choose").hidden = true;
      $("closed").hidden = false;
    };
    // Reopening the link in the same browser resumes where the participant left off; a recruitment id on
    // another device resumes on the server.
    if (known && (store.get(whoKey) || "") === who) {
      $("choose").hidden = true;
      const state = d.state.replace("TOKEN", known);
      const { status, json } = await call("GET", state, undefined, () => showError(d.network));
      showError("");
      // A recruitment id names the person. A plain link does not, and on a shared computer (a lab's) the
      // next person must not carry on with, or see, the last one's participation: it asks whether an
      // unfinished one is theirs, and a finished one is left alone.
      const finished = ["done", "screened_out", "withdrawn"].includes(json.stage);
      if (status === 200 && (who || (!finished && (await sameParticipant())))) {
        location.replace(d.page.replace("TOKEN", known));
        return;
      }
      // Someone new, or the server no longer knows the token (e.g. a new database). An answer of the last
      // person's that never reached the server is sent first, so that nothing they gave is lost.
      const pending = store.get(pendingKey(known));
      if (pending && status === 200) await call("POST", `${state}/responses`, JSON.parse(pending));
      store.remove(pendingKey(known));
      store.remove(tokenKey);
      $("choose").hidden = false;
    }
    // A closed study takes nobody new; a recruitment id that started elsewhere still gets back in.
    if (d.closed && !who) return showClosed();
    const buttons = document.querySelectorAll("[data-language]");
    buttons.forEach((button) =>
      button.addEventListener("click", async () => {
        buttons.forEach((b) => (b.disabled = true));
        showError("");
        const language = button.dataset.language;
        const body = { source: d.start.source, language, recruitment: d.start.recruitment };
        if (who) body.external_id = who;
        let { status, json } = await call("POST", d.api, body, undefined, language);
        const token = json.token;
        if (status < 400 && json.resume) {
          // A returning participant keeps their place; the language is the one chosen now.
          const url = `${d.state.replace("TOKEN", token)}/language`;
          ({ status, json } = await call("POST", url, { language }, undefined, language));
        }
        if (status >= 400) {
          if (json.error.code === "study_closed") return showClosed(); // closed since the page was loaded
          showError(json.error.message);
          buttons.forEach((b) => (b.disabled = false));
          return;
        }
        store.set(tokenKey, token);
        store.set(whoKey, who);
        location.assign(d.page.replace("TOKEN", token));
      })
    );
    if (buttons.length === 1) buttons[0].click(); // one language: nothing to choose
  }

  // Whether the person at the study link is the one who started in this browser before (they say so).
  function sameParticipant() {
    $("resume").hidden = false;
    return new Promise((resolve) => {
      $("resume-continue").addEventListener("click", () => resolve(true));
      $("resume-new").addEventListener("click", () => {
        $("resume").hidden = true;
        resolve(false);
      });
    });
  }

  function page() {
    return readData("page-data");
  }

  function consent() {
    const d = page();
    const buttons = [$("consent-yes"), $("consent-no"), $("decline-final"), $("decline-back")];
    const confirm = $("decline-confirm");
    const send = async (value) => {
      buttons.forEach((b) => (b.disabled = true));
      const { status, json } = await call("POST", `${d.api}/consent`, { consent: value });
      if (status >= 400 && json.error.code !== "consent_already_given") {
        buttons.forEach((b) => (b.disabled = false));
        return showError(json.error.message);
      }
      location.reload(); // the server renders the next stage
    };
    // Declining is final (the participation ends), so it is asked once more, in the page.
    const askAgain = (open) => {
      confirm.hidden = !open;
      $("consent-choices").hidden = open;
      if (open) {
        confirm.scrollIntoView({ block: "center" });
        $("decline-question").focus({ preventScroll: true });
      } else {
        $("consent-no").focus();
      }
    };
    $("consent-yes").addEventListener("click", () => send(true));
    $("consent-no").addEventListener("click", () => askAgain(true));
    $("decline-back").addEventListener("click", () => askAgain(false));
    $("decline-final").addEventListener("click", () => send(false));
  }

  function background() {
    const d = page();
    const form = $("background");
    const submit = form.querySelector("button[type=submit]");
    const selfDescribed = form.elements.gender_text;
    const list = $("language-list");
    const maxLanguages = Number(list.dataset.max);

    // The language list is long: a filter box narrows it; ticked languages stay in view.
    const filter = $("language-filter");
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      list.querySelectorAll("label").forEach((label) => {
        const box = label.querySelector("input");
        label.hidden = q !== "" && !box.checked && !label.textContent.toLowerCase().includes(q) && !box.value.startsWith(q);
      });
      list.querySelectorAll(".group-label").forEach((heading) => (heading.hidden = q !== ""));
    });
    const chosen = $("languages-chosen");
    list.addEventListener("change", () => {
      const names = [...list.querySelectorAll("input:checked")].map((box) => box.nextElementSibling.textContent);
      chosen.textContent = names.length ? `${d.text.chosen} ${names.join(", ")}` : "";
      if (names.length <= maxLanguages) clearError("languages");
    });
    form.querySelectorAll("input[name=gender]").forEach((radio) =>
      radio.addEventListener("change", () => {
        selfDescribed.disabled = radio.value !== "self" || !radio.checked;
        if (!selfDescribed.disabled) selfDescribed.focus();
      })
    );

    // An error is shown right below the question it is about, scrolled into view, announced (role=alert,
    // and tied to the field by aria-describedby) and the field focused, so the participant can fix it.
    const fieldOf = (name) => form.querySelector(`[data-field="${name}"]`);
    function clearError(name) {
      const box = $(`error-${name}`);
      if (!box) return;
      box.hidden = true;
      box.textContent = "";
      fieldOf(name).querySelectorAll("input, select").forEach((el) => el.removeAttribute("aria-invalid"));
    }
    function fieldError(name, message) {
      const box = $(`error-${name}`);
      if (!box) return showError(message); // not a question of this form: below the button
      box.textContent = message;
      box.hidden = false;
      const container = fieldOf(name);
      const inputs = [...container.querySelectorAll("input:not([type=search]):not(:disabled), select")];
      inputs.forEach((el) => el.setAttribute("aria-invalid", "true"));
      const focus = inputs.find((el) => el.checked) || inputs[0];
      container.scrollIntoView({ block: "start", behavior: "instant" });
      if (focus) focus.focus({ preventScroll: true });
    }
    form.addEventListener("change", (event) => {
      const container = event.target.closest("[data-field]");
      if (container && container.dataset.field !== "languages") clearError(container.dataset.field);
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      form.querySelectorAll("[data-field]").forEach((el) => clearError(el.dataset.field));
      showError("");
      const f = new FormData(form);
      const body = {};
      if (!f.get("culture_group")) return fieldError("culture_group", d.text.need_group);
      body.culture_group = f.get("culture_group");
      for (const name of ["country_of_birth", "country_of_residence"]) {
        if (f.get(name)) body[name] = f.get(name);
      }
      const languages = f.getAll("languages");
      if (languages.length > maxLanguages) {
        return fieldError("languages", fill(d.text.too_many_languages, { n: maxLanguages }));
      }
      if (languages.length) body.languages = languages;
      const age = String(f.get("age") || "").trim();
      if (age !== "" || form.elements.age.validity.badInput) {
        const n = Number(age);
        if (!Number.isInteger(n) || n < 18 || n > 120) return fieldError("age", d.text.bad_age);
        body.age = n;
      }
      const gender = f.get("gender");
      if (gender === "self") {
        const text = String(f.get("gender_text") || "").trim();
        if (text) body.gender = text;
      } else if (gender) {
        body.gender = gender;
      }
      if (f.get("art_training")) body.art_training = Number(f.get("art_training"));
      submit.disabled = true;
      const { status, json } = await call("POST", `${d.api}/background`, body);
      if (status >= 400 && json.error.code !== "quota_full" && json.error.code !== "background_already_given") {
        submit.disabled = false;
        // The server says which question, in the participant's language.
        return json.error.field ? fieldError(json.error.field, json.error.message) : showError(json.error.message);
      }
      location.reload(); // trials, or the page saying the group is full
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

  // Resolves once every image is loaded. An image that fails (a network blip, a server restarting) is
  // retried with the API calls' backoff, under a fresh URL so that no cached failure answers: a trial is
  // never shown, and so never answered, with a broken image.
  function loadImages(urls, onRetry) {
    const load = (url) =>
      new Promise((resolve) => {
        const attempt = (n) => {
          const img = new Image();
          img.onload = () => resolve(img);
          img.onerror = () => {
            onRetry(n);
            setTimeout(() => attempt(n + 1), backoff(n));
          };
          img.src = n === 0 ? url : `${url}?retry=${n}`;
        };
        attempt(0);
      });
    return Promise.all(urls.map(load));
  }

  const MAX_SCALE = 8;
  const PIXELATED_UP_TO = 64; // px of the image itself: 32- and 64-px samples; 128 px and up are smooth

  function trials(withPractice) {
    const d = page();
    const preloaded = []; // kept referenced so that the browser finishes fetching them

    function setStatus(text) {
      $("status").textContent = text || "";
    }

    // Draws one trial; onAnswer(value, rt_ms, hidden_ms) is called once, with the reaction time measured
    // from the moment the images were on screen, and how long of it the page was hidden or out of focus.
    function renderTrial(trial, onAnswer, isPractice) {
      $("instructions").hidden = true;
      const section = $("trial");
      section.hidden = false;
      section.dataset.kind = trial.kind;
      section.dataset.index = isPractice ? "practice" : String(trial.index);
      section.dataset.ready = "false";
      setStatus("");
      showError("");
      $("practice-label").hidden = !isPractice;
      $("question").textContent = trial.question.text;
      const answered = isPractice ? 0 : trial.index;
      $("counter").textContent = isPractice ? "" : fill(d.text.progress, { i: trial.index + 1, n: trial.total });
      $("bar").style.width = `${(100 * answered) / trial.total}%`;
      $("progress").setAttribute("aria-valuenow", String(answered));
      $("progress").setAttribute("aria-valuemax", String(trial.total));
      const images = $("images");
      const answer = $("answer");
      images.replaceChildren();
      answer.replaceChildren();
      images.className = `images n${trial.stimuli.length}`;
      let shownAt = null;
      let done = false;
      let onKey = () => {};
      const controls = () => [...answer.querySelectorAll("button, input"), ...images.querySelectorAll("button")];
      const give = (value, control) => {
        if (done || shownAt === null) return;
        done = true;
        document.removeEventListener("keydown", keydown);
        controls().forEach((el) => (el.disabled = true));
        // The answer given stays marked until the next trial replaces this one.
        const chosen = control || answer.querySelector(`.likert button[data-value="${value}"]`) ||
          images.querySelector(`.pick[data-value="${value}"]`) || answer.querySelector("button.next");
        if (chosen) {
          chosen.classList.add("chosen");
          chosen.setAttribute("aria-pressed", "true");
        }
        // The API takes up to an hour; a page left open longer still stores its answer.
        const cap = (ms) => Math.min(3600000, Math.round(ms));
        const now = performance.now();
        onAnswer(value, cap(now - shownAt), cap(absence.read(now)));
      };
      const keydown = (e) => {
        if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || shownAt === null) return;
        onKey(e);
      };

      const { min, max, labels } = trial.question.scale || {};
      if (trial.kind === "likert" || trial.kind === "attention") {
        const row = document.createElement("div");
        row.className = "likert";
        row.setAttribute("role", "group");
        row.setAttribute("aria-label", trial.question.text);
        for (let v = min; v <= max; v++) {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = v;
          b.dataset.value = v;
          b.addEventListener("click", () => give(v, b));
          row.append(b);
        }
        row.style.setProperty("--points", String(max - min + 1));
        answer.append(row);
        if (labels) answer.append(anchors(labels));
        // Number keys: the value itself when every point is one digit (1-7 answers 1-7), else the
        // position on a scale of up to nine points.
        onKey = (e) => {
          if (!/^[0-9]$/.test(e.key)) return;
          const k = Number(e.key);
          if (min >= 0 && max <= 9) {
            if (k >= min && k <= max) give(k);
          } else if (max - min < 9 && k >= 1 && k <= max - min + 1) {
            give(min + k - 1);
          }
        };
      } else if (trial.kind === "slider") {
        const input = document.createElement("input");
        input.type = "range";
        input.min = 0;
        input.max = 100;
        input.step = 1;
        input.value = 50;
        input.className = "slider untouched";
        input.setAttribute("aria-label", trial.question.text);
        const go = document.createElement("button");
        go.type = "button";
        go.className = "big primary next";
        go.textContent = d.text.next;
        go.disabled = true;
        setStatus(d.text.move_slider);
        // An untouched slider is not an answer: the value must be moved before it can be submitted.
        input.addEventListener("input", () => {
          input.classList.remove("untouched");
          go.disabled = false;
          setStatus("");
        });
        go.addEventListener("click", () => give(Number(input.value), go));
        answer.append(input, anchors(labels || ["0", "100"]), go);
        onKey = (e) => {
          if (e.key === "Enter" && !go.disabled) {
            e.preventDefault();
            give(Number(input.value), go);
          }
        };
      } else if (trial.kind === "choice") {
        setStatus(d.text.choose);
        onKey = (e) => {
          if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
            e.preventDefault();
            give(e.key === "ArrowLeft" ? 0 : 1);
          }
        };
      }
      controls().forEach((el) => (el.disabled = true));

      const hint = $("status").textContent; // the trial's own hint, back once the images are in
      loadImages(trial.stimuli.map((s) => s.url), () => setStatus(d.text.network)).then((loaded) => {
        setStatus(hint);
        loaded.forEach((img, i) => {
          img.alt = "";
          img.draggable = false;
          // Never larger than MAX_SCALE times the image's own size: a small generated image blown up to
          // fill the screen shows the browser's interpolation more than the image. Small images are drawn
          // with crisp pixels (pixelated) rather than blurred, so participants see the pixels the generator
          // made; large ones are scaled smoothly.
          if (img.naturalWidth) {
            img.style.maxWidth = `${img.naturalWidth * MAX_SCALE}px`;
            img.classList.toggle("pixelated", img.naturalWidth <= PIXELATED_UP_TO);
          }
          if (trial.kind === "choice") {
            const b = document.createElement("button");
            b.type = "button";
            b.className = "pick";
            b.dataset.value = i;
            b.setAttribute("aria-label", i === 0 ? d.text.left : d.text.right);
            b.append(img);
            b.addEventListener("click", () => give(i, b));
            images.append(b);
          } else {
            images.append(img);
          }
        });
        controls().forEach((el) => (el.disabled = false));
        const next = answer.querySelector("button.next");
        if (next) next.disabled = true;
        document.addEventListener("keydown", keydown);
        shownAt = performance.now();
        absence.reset();
        section.dataset.ready = "true";
        const slider = answer.querySelector("input[type=range]");
        if (slider && !matchMedia("(pointer: coarse)").matches) slider.focus({ preventScroll: true });
      });
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
        const img = new Image();
        img.src = url;
        preloaded.push(img);
      });
      preloaded.splice(0, Math.max(0, preloaded.length - 4));
    }

    // The server's view of what comes next; anything unexpected (the participation ended elsewhere)
    // reloads the page, which then shows the right stage.
    async function fetchNext() {
      const { status, json } = await call("GET", `${d.api}/next`);
      if (status >= 400) {
        location.reload();
        return null;
      }
      return json;
    }

    // Stores one answer: kept in localStorage until the server has it, retried with the same
    // response_id (a retry the server already has stores nothing new).
    async function send(answer) {
      store.set(pendingKey(d.token), JSON.stringify(answer));
      const { status, json } = await call("POST", `${d.api}/responses`, answer, () => setStatus(d.text.network));
      store.remove(pendingKey(d.token));
      if (status === 200 || status === 201) return json.next;
      if (status === 409) return fetchNext(); // answered or moved on elsewhere: resynchronise
      showError(json.error ? json.error.message : d.text.error);
      return null;
    }

    function show(next) {
      if (!next) return;
      if (next.done) {
        location.reload(); // the completion page, rendered only now that the last answer is stored
        return;
      }
      preload(next);
      renderTrial(next.trial, async (value, rt, hidden) => {
        show(await send({ trial_id: next.trial.id, response_id: uuid4(), value, rt_ms: rt, hidden_ms: hidden }));
      });
    }

    async function begin() {
      const pending = store.get(pendingKey(d.token));
      if (pending) {
        setStatus(d.text.network);
        await send(JSON.parse(pending));
      }
      const next = await fetchNext();
      if (!next) return;
      if (next.done) return location.reload();
      if (next.trial.index > 0) return show(next); // resuming: no instructions again
      preload({ preload: next.trial.stimuli.map((s) => s.url) });
      $("instructions").hidden = false;
      if (!matchMedia("(pointer: coarse)").matches) $("begin").focus({ preventScroll: true }); // Enter starts
      $("begin").addEventListener("click", () => {
        if (!withPractice) return show(next);
        const practice = { ...next.trial, stimuli: next.trial.stimuli.map(() => ({ url: practiceImage() })) };
        renderTrial(
          practice,
          () => {
            setStatus(d.text.practice_done);
            setTimeout(() => show(next), 1200);
          },
          true
        );
      });
    }
    begin();
  }

  // The completion page: the code, and a button to go on (back to the recruitment site, or submitting the
  // MTurk HIT) whenever the participant is ready; it has the focus, so Enter goes on at once.
  function done() {
    const next = $("continue") || $("redirect");
    if (next && !matchMedia("(pointer: coarse)").matches) next.focus({ preventScroll: true });
  }

  return { start, consent, background, trials, done };
})();
