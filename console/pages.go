package console

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// page is what every page shows: the header, the navigation, the session.
type page struct {
	Title, Nav   string
	Version      string
	Prefix       string
	Queues       []string
	ReadOnly     bool // no token configured: nothing can be changed
	LoggedIn     bool
	CSRF         string
	Flash        string
	Path         string // the request's path and query, for the login's return
	Jaeger       string
	CurrentQueue string
}

func (c *Console) page(r *http.Request, title, nav string) page {
	nonce := c.auth.session(r, c.o.Now())
	p := page{
		Title: title, Nav: nav, Version: c.o.Version, Prefix: c.cfg.KeyPrefix,
		ReadOnly: !c.auth.enabled(), LoggedIn: nonce != "", CSRF: c.auth.csrf(nonce),
		Path: r.URL.RequestURI(), Jaeger: c.o.JaegerURL,
	}
	for _, w := range c.cfg.Watchers {
		p.Queues = append(p.Queues, w.InputQueue)
	}
	if f, err := r.Cookie(flashCookie); err == nil {
		if v, err := url.QueryUnescape(f.Value); err == nil {
			p.Flash = v
		}
	}
	return p
}

// CanAct reports whether the page may offer changes.
func (p page) CanAct() bool { return p.LoggedIn }

const flashCookie = "resc_ui_flash"

// flash makes the next page show msg once (the page clears it).
func flash(w http.ResponseWriter, msg string) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(msg), Path: Path, MaxAge: 60,
		HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

// render writes the page name's template tmpl with v; the page's flash
// message, now shown, is cleared.
func (c *Console) render(w http.ResponseWriter, status int, name, tmpl string, v any) {
	var b bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&b, tmpl, v); err != nil {
		c.log.Warn("console: rendering", "page", name, "err", err)
		http.Error(w, "the console could not render this page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if tmpl == "layout" {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: Path, MaxAge: -1})
	}
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

type messageView struct {
	page
	Heading, Text string
}

// message renders a page that only says something (an error, a refusal).
func (c *Console) message(w http.ResponseWriter, r *http.Request, status int, heading, text string) {
	c.render(w, status, "message", "layout", messageView{page: c.page(r, heading, ""), Heading: heading, Text: text})
}

type loginView struct {
	page
	Next       string
	Wrong      bool
	RetryAfter int  // seconds, when failed logins are limited
	Everyone   bool // the limit holds for every client, not only this one
}

// refuseLogin answers an attempt refused by the limit of failed logins
// (see logins): 429 with Retry-After, logged once per stretch.
func (c *Console) refuseLogin(w http.ResponseWriter, r *http.Request, next, client string, no *refusal) {
	secs := retryAfterSeconds(no.retryAfter)
	if no.firstTime {
		if no.everyone {
			c.log.Warn("console: too many failed logins from every client: logins refused for a while", "remote", r.RemoteAddr, "retry_after_s", secs)
		} else {
			c.log.Warn("console: too many failed logins: logins refused for a while", "client", client, "retry_after_s", secs)
		}
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.render(w, http.StatusTooManyRequests, "login", "layout", loginView{page: c.page(r, "Log in", ""), Next: next, RetryAfter: secs, Everyone: no.everyone})
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if !c.auth.enabled() {
		c.message(w, r, http.StatusNotFound, "Read-only console",
			"This console has no token (RESC_UI_TOKEN): it shows the deployment and changes nothing.")
		return
	}
	c.render(w, http.StatusOK, "login", "layout", loginView{page: c.page(r, "Log in", ""), Next: safeNext(r.URL.Query().Get("next"))})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		c.message(w, r, http.StatusForbidden, "Refused", "This request does not come from the console's own pages.")
		return
	}
	if !c.auth.enabled() {
		c.message(w, r, http.StatusForbidden, "Read-only console", "This console has no token (RESC_UI_TOKEN): nobody can log in.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	client := clientOf(r)
	if no := c.logins.reserve(client, c.o.Now()); no != nil {
		c.refuseLogin(w, r, next, client, no)
		return
	}
	if !c.auth.checkToken(r.PostFormValue("token")) {
		c.log.Warn("console: wrong token given at login", "remote", r.RemoteAddr)
		c.render(w, http.StatusUnauthorized, "login", "layout", loginView{page: c.page(r, "Log in", ""), Next: next, Wrong: true})
		return
	}
	c.logins.release(client, c.o.Now())
	http.SetCookie(w, c.auth.newSession(r, Path, c.o.Now()))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.allowed(w, r); !ok {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Path, MaxAge: -1})
	flash(w, "Logged out.")
	http.Redirect(w, r, Path, http.StatusSeeOther)
}

// allowed checks a state-changing request: same origin, a session, its
// CSRF token. It answers the refusal itself.
func (c *Console) allowed(w http.ResponseWriter, r *http.Request) (nonce string, ok bool) {
	switch {
	case !sameOrigin(r):
		c.message(w, r, http.StatusForbidden, "Refused", "This request does not come from the console's own pages.")
	case !c.auth.enabled():
		c.message(w, r, http.StatusForbidden, "Read-only console",
			"This console has no token (RESC_UI_TOKEN): it changes nothing. Use `resc dead`, or start the console with a token.")
	case c.auth.session(r, c.o.Now()) == "":
		c.message(w, r, http.StatusForbidden, "Log in first", "Changes need a session: log in with the console's token.")
	case !c.auth.checkCSRF(r, c.auth.session(r, c.o.Now())):
		c.message(w, r, http.StatusForbidden, "Refused", "The form's CSRF token is missing or stale: reload the page and try again.")
	default:
		return c.auth.session(r, c.o.Now()), true
	}
	return "", false
}

// safeNext keeps a return address inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Path) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Path
	}
	return next
}
