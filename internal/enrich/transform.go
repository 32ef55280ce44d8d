package enrich

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	ev "github.com/furrow-io/furrow/internal/event"
)

// AtomicError is a tracker parameter that could not be converted to its
// column, or a column over its length limit.
type AtomicError struct {
	Field   string // tracker parameter or column name
	Value   string
	Message string
	Keyword string // atomic_field_parse_error or atomic_field_length_exceeded
}

const (
	kwParse  = "atomic_field_parse_error"
	kwLength = "atomic_field_length_exceeded"
)

var eventTypes = map[string]string{
	"pv": "page_view", "pp": "page_ping", "se": "struct", "ev": "struct",
	"ue": "unstruct", "tr": "transaction", "ti": "transaction_item", "ad": "ad_impression",
}

var platforms = map[string]bool{
	"web": true, "iot": true, "app": true, "mob": true, "pc": true,
	"cnsl": true, "tv": true, "srv": true, "headset": true,
}

// stringParams maps parameters copied as (TSV-safe) text.
var stringParams = map[string]int{
	"aid": ev.AppID, "uid": ev.UserID, "duid": ev.DomainUserID, "nuid": ev.NetworkUserID,
	"ua": ev.UserAgent, "fp": ev.UserFingerprint, "tna": ev.NameTracker, "tv": ev.VTracker,
	"cv": ev.VCollector, "lang": ev.BrLang, "cd": ev.BrColordepth, "tz": ev.OsTimezone,
	"refr": ev.PageReferrer, "url": ev.PageURL, "page": ev.PageTitle, "cs": ev.DocCharset,
	"se_ca": ev.SeCategory, "se_ac": ev.SeAction, "se_la": ev.SeLabel, "se_pr": ev.SeProperty,
	"ev_ca": ev.SeCategory, "ev_ac": ev.SeAction, "ev_la": ev.SeLabel, "ev_pr": ev.SeProperty,
	"tr_id": ev.TrOrderID, "tr_af": ev.TrAffiliation, "tr_ci": ev.TrCity, "tr_st": ev.TrState,
	"tr_co": ev.TrCountry, "tr_cu": ev.TrCurrency, "ti_id": ev.TiOrderID, "ti_sk": ev.TiSku,
	"ti_nm": ev.TiName, "ti_na": ev.TiName, "ti_ca": ev.TiCategory, "ti_cu": ev.TiCurrency,
}

var intParams = map[string]int{
	"tid": ev.TxnID, "vid": ev.DomainSessionIdx, "ti_qu": ev.TiQuantity,
	"pp_mix": ev.PpXoffsetMin, "pp_max": ev.PpXoffsetMax, "pp_miy": ev.PpYoffsetMin, "pp_may": ev.PpYoffsetMax,
}

var decimalParams = map[string]int{
	"se_va": ev.SeValue, "ev_va": ev.SeValue, "tr_tt": ev.TrTotal, "tr_tx": ev.TrTax,
	"tr_sh": ev.TrShipping, "ti_pr": ev.TiPrice,
}

var boolParams = map[string]int{
	"f_pdf": ev.BrFeaturesPdf, "f_fla": ev.BrFeaturesFlash, "f_java": ev.BrFeaturesJava,
	"f_dir": ev.BrFeaturesDirector, "f_qt": ev.BrFeaturesQuicktime, "f_realp": ev.BrFeaturesRealplayer,
	"f_wma": ev.BrFeaturesWindowsmedia, "f_gears": ev.BrFeaturesGears, "f_ag": ev.BrFeaturesSilverlight,
	"cookie": ev.BrCookies,
}

var timestampParams = map[string]int{"dtm": ev.DvceCreatedTstamp, "stm": ev.DvceSentTstamp, "ttm": ev.TrueTstamp}

var dimensionParams = map[string][2]int{
	"res": {ev.DvceScreenwidth, ev.DvceScreenheight},
	"ds":  {ev.DocWidth, ev.DocHeight},
	"vp":  {ev.BrViewwidth, ev.BrViewheight},
}

// entityParams are the JSON carrying parameters, read after the others.
type entityParams struct {
	ue, co           string
	ueB64, coB64     bool
	hasUE, hasCO     bool
	ueParam, coParam string
}

// transform copies tracker parameters into e's columns, converting and
// checking each one. Unknown parameters are ignored. tnuid is applied
// last so it wins over nuid.
func transform(e *Event, params []Param) (entityParams, []AtomicError) {
	var errs []AtomicError
	var ents entityParams
	tnuid, hasTnuid := "", false
	bad := func(p Param, msg string) {
		errs = append(errs, AtomicError{Field: p.Name, Value: p.Value, Message: msg, Keyword: kwParse})
	}
	for _, p := range params {
		if p.Null {
			continue
		}
		v := p.Value
		if i, ok := stringParams[p.Name]; ok {
			e.F[i] = tsvSafe(v)
			continue
		}
		if v == "" && p.Name != "e" {
			continue
		}
		switch p.Name {
		case "e":
			t, ok := eventTypes[v]
			if !ok {
				bad(p, fmt.Sprintf("Field [e]: [%s] is not a recognised event code", v))
				continue
			}
			e.F[ev.Event] = t
		case "p":
			if !platforms[v] {
				bad(p, fmt.Sprintf("Field [p]: [%s] is not a supported tracking platform", v))
				continue
			}
			e.F[ev.Platform] = v
		case "ip":
			e.F[ev.UserIPAddress] = firstIP(v)
		case "eid":
			u, ok := normalizeUUID(v)
			if !ok {
				bad(p, fmt.Sprintf("Field [eid]: [%s] is not a valid UUID", v))
				continue
			}
			e.F[ev.EventID] = u
		case "sid":
			u, ok := normalizeUUID(v)
			if !ok {
				bad(p, fmt.Sprintf("Field [sid]: [%s] is not a valid UUID", v))
				continue
			}
			e.F[ev.DomainSessionID] = u
		case "tnuid":
			tnuid, hasTnuid = tsvSafe(v), true
		case "ue_pr", "ue_px":
			ents.ue, ents.ueB64, ents.hasUE, ents.ueParam = v, p.Name == "ue_px", true, p.Name
		case "co", "cx":
			ents.co, ents.coB64, ents.hasCO, ents.coParam = v, p.Name == "cx", true, p.Name
		default:
			if i, ok := intParams[p.Name]; ok {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
				if err != nil {
					bad(p, fmt.Sprintf("Field [%s]: [%s] is not a valid integer", p.Name, v))
					continue
				}
				e.F[i] = strconv.FormatInt(n, 10)
			} else if i, ok := decimalParams[p.Name]; ok {
				d, ok := normalizeDecimal(v)
				if !ok {
					bad(p, fmt.Sprintf("Field [%s]: [%s] is not a valid decimal number", p.Name, v))
					continue
				}
				e.F[i] = d
			} else if i, ok := boolParams[p.Name]; ok {
				if v != "0" && v != "1" {
					bad(p, fmt.Sprintf("Field [%s]: [%s] is not a valid boolean (expected 0 or 1)", p.Name, v))
					continue
				}
				e.F[i] = v
			} else if i, ok := timestampParams[p.Name]; ok {
				ts, ok := msToTimestamp(v)
				if !ok {
					bad(p, fmt.Sprintf("Field [%s]: [%s] is not a valid timestamp in milliseconds since the epoch (years 0 to 9999)", p.Name, v))
					continue
				}
				e.F[i] = ts
			} else if d, ok := dimensionParams[p.Name]; ok {
				w, h, ok := parseDimensions(v)
				if !ok {
					bad(p, fmt.Sprintf("Field [%s]: [%s] does not contain valid dimensions (WIDTHxHEIGHT)", p.Name, v))
					continue
				}
				e.F[d[0]], e.F[d[1]] = w, h
			}
		}
	}
	if hasTnuid {
		e.F[ev.NetworkUserID] = tnuid
	}
	return ents, errs
}

// firstIP keeps the first address of a list separated by comma, pipe or
// space (X-Forwarded-For style values).
func firstIP(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, ",| "); i >= 0 {
		s = s[:i]
	}
	return s
}

// normalizeUUID checks the 8-4-4-4-12 hex form and lower-cases it.
func normalizeUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	lower := true
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
			continue
		}
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			lower = false
		default:
			return "", false
		}
	}
	if !lower {
		return strings.ToLower(s), true
	}
	return s, true
}

// ValidUUID reports whether s is an 8-4-4-4-12 hex UUID.
func ValidUUID(s string) bool {
	_, ok := normalizeUUID(s)
	return ok
}

// normalizeDecimal accepts a decimal number ([+-]digits[.digits][e[+-]digits])
// and writes it without exponent.
func normalizeDecimal(s string) (string, bool) {
	s = strings.TrimSpace(s)
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits, exp := 0, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
		case c == 'e' || c == 'E':
			exp = true
		case (c == '+' || c == '-') && exp:
		default:
			return "", false
		}
	}
	if digits == 0 || strings.Count(s, ".") > 1 {
		return "", false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", false
	}
	if !exp {
		return strings.TrimPrefix(s, "+"), true
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}

// Years allowed in timestamps, as four-digit years.
var (
	minTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
)

func msToTimestamp(s string) (string, bool) {
	ms, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return "", false
	}
	if ms < minTime.UnixMilli() || ms > maxTime.UnixMilli() {
		return "", false
	}
	return formatTimestamp(time.UnixMilli(ms)), true
}

func parseDimensions(s string) (string, string, bool) {
	w, h, ok := strings.Cut(s, "x")
	if !ok {
		return "", "", false
	}
	wi, err1 := strconv.ParseInt(w, 10, 32)
	hi, err2 := strconv.ParseInt(h, 10, 32)
	if err1 != nil || err2 != nil || wi < 0 || hi < 0 || w[0] == '+' || h[0] == '+' {
		return "", "", false
	}
	return strconv.FormatInt(wi, 10), strconv.FormatInt(hi, 10), true
}
