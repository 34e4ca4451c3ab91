package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Anonymous is the principal of a connection that did not authenticate (Kafka's
// KafkaPrincipal.ANONYMOUS).
const Anonymous = "User:ANONYMOUS"

// UserPrincipal is the principal string of a user name.
func UserPrincipal(name string) string { return "User:" + name }

// PrincipalRules maps a client certificate's distinguished name to a user name, with the
// syntax of Kafka's ssl.principal.mapping.rules (SslPrincipalMapper): a comma-separated
// list of RULE:pattern/replacement/[LU] and DEFAULT, tried in order; the first rule whose
// pattern matches the whole name decides. With no rule that matches, the name is refused.
type PrincipalRules struct {
	rules []principalRule
}

type principalRule struct {
	isDefault   bool
	pattern     *regexp.Regexp
	replacement string // in Go's regexp.Expand syntax
	toLower     bool
	toUpper     bool
}

// ErrNoMatchingRule is a name no rule maps.
var ErrNoMatchingRule = errors.New("no principal mapping rule matches")

// ruleSyntax is SslPrincipalMapper's RULE_PARSER: a rule is RULE:, a pattern and a
// replacement each ending at an unescaped slash, and an optional L or U; rules are
// separated by commas and blanks.
var ruleSyntax = regexp.MustCompile(`^(DEFAULT|RULE:((?:\\/|[^/])*)/((?:\\/|[^/])*)/([LU]?))\s*(?:,\s*|$)`)

// ParsePrincipalRules parses ssl.principal.mapping.rules. An empty string is "DEFAULT",
// which keeps the distinguished name as it is, as Kafka does.
func ParsePrincipalRules(s string) (*PrincipalRules, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		s = "DEFAULT"
	}
	var pr PrincipalRules
	for rest := s; rest != ""; {
		m := ruleSyntax.FindStringSubmatch(rest)
		if m == nil {
			return nil, fmt.Errorf("invalid principal mapping rule at %q", rest)
		}
		rest = rest[len(m[0]):]
		if m[1] == "DEFAULT" {
			pr.rules = append(pr.rules, principalRule{isDefault: true})
			continue
		}
		pattern := strings.ReplaceAll(m[2], `\/`, `/`)
		re, err := regexp.Compile("^(?:" + pattern + ")$")
		if err != nil {
			return nil, fmt.Errorf("principal mapping rule pattern %q: %w", pattern, err)
		}
		pr.rules = append(pr.rules, principalRule{pattern: re, replacement: javaReplacement(strings.ReplaceAll(m[3], `\/`, `/`)),
			toLower: m[4] == "L", toUpper: m[4] == "U"})
	}
	return &pr, nil
}

// javaReplacement turns Java's Matcher.replaceAll syntax ($1, \$ for a literal dollar)
// into regexp.Expand's (${1}, $$).
func javaReplacement(r string) string {
	var b strings.Builder
	for i := 0; i < len(r); i++ {
		switch c := r[i]; {
		case c == '\\' && i+1 < len(r):
			i++
			if r[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(r[i])
			}
		case c == '$' && i+1 < len(r) && r[i+1] >= '0' && r[i+1] <= '9':
			j := i + 1
			for j < len(r) && r[j] >= '0' && r[j] <= '9' {
				j++
			}
			b.WriteString("${" + r[i+1:j] + "}")
			i = j - 1
		case c == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Map returns the user name for a distinguished name (RFC 2253, as Java's
// X500Principal.getName() writes it and crypto/x509's pkix.Name.String()).
func (p *PrincipalRules) Map(dn string) (string, error) {
	for _, r := range p.rules {
		if r.isDefault {
			return dn, nil
		}
		m := r.pattern.FindStringSubmatchIndex(dn)
		if m == nil {
			continue
		}
		name := string(r.pattern.ExpandString(nil, r.replacement, dn, m))
		switch {
		case r.toLower:
			name = strings.ToLower(name)
		case r.toUpper:
			name = strings.ToUpper(name)
		}
		return name, nil
	}
	return "", fmt.Errorf("%w: %q", ErrNoMatchingRule, dn)
}
