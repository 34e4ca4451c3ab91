package auth

import (
	"errors"
	"testing"
)

// Cases from Kafka's SslPrincipalMapperTest.
func TestPrincipalRules(t *testing.T) {
	for _, tc := range []struct {
		rules, dn, want string
		noMatch         bool
	}{
		{"", "CN=Duke,OU=ServiceUsers,O=Org,C=US", "CN=Duke,OU=ServiceUsers,O=Org,C=US", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=Duke,OU=ServiceUsers,O=Org,C=US", "Duke", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT", "CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/U", "CN=Duke,OU=ServiceUsers,O=Org,C=US", "DUKE", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,DEFAULT", "CN=Duke,OU=Other,O=Org", "CN=Duke,OU=Other,O=Org", false},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/", "CN=Duke,OU=Other,O=Org", "", true},
		{"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L", "CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US", "duke@javasoft", false},
		{`RULE:^CN=([^,]*)\/(.*)$/$1 and $2/`, "CN=a/b", "a and b", false},
		{`RULE:^(.*)$/\$1/`, "x", "$1", false},
		{"RULE:^CN=(.*),O=.*$/$1/ , RULE:^(.*)$/other/", "OU=x", "other", false},
	} {
		pr, err := ParsePrincipalRules(tc.rules)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.rules, err)
		}
		got, err := pr.Map(tc.dn)
		if tc.noMatch {
			if !errors.Is(err, ErrNoMatchingRule) {
				t.Errorf("%q on %q: %q, %v; want no match", tc.rules, tc.dn, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q on %q = %q, %v; want %q", tc.rules, tc.dn, got, err, tc.want)
		}
	}
}

func TestPrincipalRulesRefuseBadSyntax(t *testing.T) {
	for _, rules := range []string{
		"DEFAULTS", "RULE:^CN=(.*)$/$1", "RULE:^CN=(.*)$/$1/X", "RULE:(/x/", "RULE:^CN=(.*)$/$1/,,DEFAULT", "DEFAULT,garbage",
	} {
		if _, err := ParsePrincipalRules(rules); err == nil {
			t.Errorf("ParsePrincipalRules(%q) accepted it", rules)
		}
	}
}

func FuzzPrincipalRules(f *testing.F) {
	f.Add("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT", "CN=Duke,OU=ServiceUsers,O=Org,C=US")
	f.Add(`RULE:^(.*)$/\$1 $2 $$/U`, "x")
	f.Add("DEFAULT", "")
	f.Fuzz(func(t *testing.T, rules, dn string) {
		pr, err := ParsePrincipalRules(rules)
		if err != nil {
			return
		}
		name, err := pr.Map(dn)
		if err == nil && name == "" && dn != "" && len(pr.rules) > 0 && pr.rules[0].isDefault {
			t.Fatalf("DEFAULT mapped %q to nothing", dn)
		}
	})
}
