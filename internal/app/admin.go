package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/furrow-io/furrow/internal/admin"
	"github.com/furrow-io/furrow/internal/auth"
	"github.com/furrow-io/furrow/internal/config"
	"github.com/furrow-io/furrow/internal/loader"
	"github.com/furrow-io/furrow/internal/stats"
	"github.com/furrow-io/furrow/internal/tlsx"
)

// The admin surface (package admin): on the local socket always, with
// /v1/sql and without authentication; with admin.listen, also on a TLS
// listener behind admin.auth, without /v1/sql, and with Micro's API when
// the collector is not loopback-only (Micro is never served on a public
// collector port). Usage figures (/v1/stats) are kept in data_dir/stats.json.

// statsFile is where the usage figures are kept between runs.
func statsFile(dataDir string) string { return filepath.Join(dataDir, "stats.json") }

// openAdmin makes the recorder, the sampler, and the admin listener with
// its TLS and authentication; the handlers are built by adminHandler.
func (a *App) openAdmin(ctx context.Context) error {
	a.sampler = admin.NewSampler(a.reg)
	if a.role == RoleRun || a.role == RoleEnrich { // the roles that enrich count
		a.stats = stats.New()
		if err := a.stats.Load(statsFile(a.cfg.DataDir)); err != nil {
			a.log.Warn("usage figures of the previous run not read; /v1/stats starts afresh", "err", err)
		}
	}
	if err := a.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "furrow_build_info",
		Help: "1, with furrow's version and the role of this process as labels.", ConstLabels: prometheus.Labels{"version": Version, "role": string(a.role)}},
		func() float64 { return 1 })); err != nil {
		return err
	}
	ac := a.cfg.Admin
	if ac.Listen == "" {
		return nil
	}
	var err error
	if a.adminTLS, err = a.tlsProvider(ctx, "admin.tls", ac.TLS); err != nil {
		return err
	}
	au := ac.Auth
	authn, err := auth.New(ctx, auth.Options{Issuer: au.Issuer, JWKSURL: au.JWKSURL, Audience: au.Audience, TokenUse: au.TokenUse,
		Owners: au.Owners, TokenHashes: au.TokenHashes, Leeway: au.Leeway, Registry: a.reg, Logger: a.log.With("component", "admin")})
	if err != nil {
		return err
	}
	a.adminAuth = authn.Middleware
	if a.adminListener, err = net.Listen("tcp", ac.Listen); err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	return nil
}

// tlsProvider opens the certificates of a tls section (name is its place
// in the configuration, for errors).
func (a *App) tlsProvider(ctx context.Context, name string, t config.TLSConfig) (*tlsx.Provider, error) {
	o := tlsx.Options{CertFile: t.CertFile, KeyFile: t.KeyFile, Logger: a.log.With("tls", name), Registry: a.reg}
	if t.ACME != nil {
		o.ACME = &tlsx.ACMEOptions{Hosts: t.ACME.Hosts, Email: t.ACME.Email, DirectoryURL: t.ACME.DirectoryURL,
			DirectoryCAFile: t.ACME.DirectoryCAFile, RenewBefore: t.ACME.RenewBefore, CacheDir: filepath.Join(a.cfg.DataDir, "acme")}
	}
	p, err := tlsx.New(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if t.ACME != nil && t.ACME.HTTPListen != "" {
		// HTTP-01 challenges; everything else is sent to https.
		ln, err := net.Listen("tcp", t.ACME.HTTPListen)
		if err != nil {
			p.Close(ctx)
			return nil, fmt.Errorf("%s.acme.http_listen: %w", name, err)
		}
		srv := &http.Server{Handler: p.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
		a.acmeHTTP = append(a.acmeHTTP, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("ACME HTTP-01 listener", "addr", t.ACME.HTTPListen, "err", err)
			}
		}()
	}
	return p, nil
}

// adminHandler is the admin surface of the socket (local) or of the
// network listener.
func (a *App) adminHandler(q querier, local bool) http.Handler {
	o := admin.Options{Role: string(a.role), Version: Version, Health: a.health, Gatherer: a.reg, Sampler: a.sampler,
		Stats: a.stats, StatsTop: a.cfg.Admin.StatsTop, StaleAfter: a.cfg.Admin.StaleAfter, Ready: a.readiness,
		Config: a.effectiveConfig, Destinations: a.adminDestinations(), Logger: a.log}
	if local {
		o.SQL = a.sqlHandler(q)
	} else {
		o.Auth = a.adminAuth
		if a.microS != nil && a.microOnAdmin() {
			o.Micro = a.microHTTP
		}
	}
	return admin.Handler(o)
}

// microOnAdmin tells whether Micro's API is served on the admin listener
// rather than on the collector's port: when the collector is not
// loopback-only.
func (a *App) microOnAdmin() bool {
	return a.cfg.Admin.Listen != "" && !config.IsLoopback(a.cfg.Listen)
}

// readiness is false while starting and draining.
func (a *App) readiness() (bool, string) {
	switch {
	case a.draining.Load():
		return false, "draining: furrow is stopping"
	case !a.serving.Load():
		return false, "starting"
	}
	for name, p := range map[string]*tlsx.Provider{"tls": a.collectorTLS, "admin.tls": a.adminTLS} {
		if p == nil {
			continue
		}
		if missing := p.Missing(); len(missing) > 0 {
			return false, fmt.Sprintf("starting: %s: no certificate yet from the ACME CA for %s", name, strings.Join(missing, ", "))
		}
	}
	return true, ""
}

// adminDestinations lists the destinations with what waits for each.
func (a *App) adminDestinations() []admin.Destination {
	if a.role == RoleCollect || a.role == RoleEnrich {
		return nil // they load nothing
	}
	var out []admin.Destination
	for _, d := range a.cfg.EffectiveDestinations() {
		ad := admin.Destination{Name: d.Name, Type: d.Type}
		switch {
		case a.role == RoleLoad:
			group := a.cfg.Streams.Kafka.ConsumerGroup + "-load-" + d.Name
			ad.Waiting = func() float64 { return a.sampler.Lag(group) }
		case a.enrichedLog != nil:
			ad.Waiting = func() float64 { return float64(a.enrichedLog.Lag(loader.ReaderName(d.Name))) }
		case a.raw != nil: // the fused path: DuckDB loads what the enricher reads
			ad.Waiting = func() float64 { return float64(a.raw.Lag("enrich")) }
		}
		out = append(out, ad)
	}
	return out
}

// effectiveConfig is the configuration as JSON values, secrets redacted
// (config.Secret marshals as a mask).
func (a *App) effectiveConfig() (any, error) {
	b, err := yaml.Marshal(a.cfg)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	redactHashes(v)
	return jsonable(v), nil
}

// redactHashes hides admin.auth.token_hashes: not secrets, but nothing a
// reader of the configuration needs.
func redactHashes(v any) {
	m, _ := v.(map[string]any)
	adm, _ := m["admin"].(map[string]any)
	au, _ := adm["auth"].(map[string]any)
	if hs, ok := au["token_hashes"].([]any); ok {
		au["token_hashes"] = fmt.Sprintf("%d hashes", len(hs))
	}
}

// jsonable turns YAML's map[any]any into JSON's map[string]any.
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = jsonable(x)
		}
	}
	return v
}

// serveAdmin serves the admin listener, samples the metrics and saves
// the usage figures, until ctx is done.
func (a *App) serveAdmin(ctx context.Context) {
	go func() {
		t := time.NewTicker(admin.SampleEvery)
		defer t.Stop()
		saves := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.sampler.Sample()
				if saves++; saves%2 == 0 {
					a.saveStats()
				}
			}
		}
	}()
	if a.adminListener == nil {
		return
	}
	a.adminServer = &http.Server{Handler: a.adminHandler(nil, false), ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: a.adminTLS.TLSConfig(), ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	ln := tls.NewListener(a.adminListener, a.adminServer.TLSConfig)
	a.log.Info("admin API listening", "addr", "https://"+a.adminListener.Addr().String(), "micro", a.microS != nil && a.microOnAdmin())
	if err := a.adminServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("admin listener", "addr", a.cfg.Admin.Listen, "err", err)
	}
}

// AdminAddr is the admin listener's address, empty without one.
func (a *App) AdminAddr() string {
	if a.adminListener == nil {
		return ""
	}
	return a.adminListener.Addr().String()
}

// saveStats keeps the usage figures for the next run.
func (a *App) saveStats() {
	if a.stats == nil {
		return
	}
	if err := a.stats.Save(statsFile(a.cfg.DataDir)); err != nil {
		a.log.Warn("usage figures not saved", "err", err)
	}
}

// stopAdmin closes the admin listener and saves the usage figures.
func (a *App) stopAdmin(ctx context.Context) {
	if a.adminServer != nil {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		a.adminServer.Shutdown(sctx)
		cancel()
	} else if a.adminListener != nil {
		a.adminListener.Close()
	}
	for _, srv := range a.acmeHTTP {
		srv.Close()
	}
	for _, p := range []*tlsx.Provider{a.adminTLS, a.collectorTLS} {
		if p != nil {
			p.Close(ctx)
		}
	}
	a.saveStats()
}
