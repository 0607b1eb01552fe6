package graphql

// The queries for people and consoles (API.md): who the caller is, which NICs a session may use, and the large
// lists paged and filtered by name.

import (
	"context"
	"fmt"
	"strings"

	gql "github.com/graphql-go/graphql"

	"portmirror/model"
	"portmirror/service"
)

type principalKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey{}).(principal)
	return p, ok
}

// Largest and default page sizes of the paged lists.
const (
	maxPage     = 1000
	defaultPage = 50
)

// listArgs are the optional arguments of the plain lists: without them a list is whole, as before.
func listArgs() gql.FieldConfigArgument {
	return gql.FieldConfigArgument{
		"first":        {Type: gql.Int, Description: "at most this many (1..1000); absent: all"},
		"after":        {Type: gql.String, Description: "the cursor (uuid, or datapathId for switches) of the last item of the previous page"},
		"nameContains": {Type: gql.String, Description: "only the items whose name contains this, ignoring case"},
	}
}

// pageArgs are the arguments of a ...Page query.
func pageArgs() gql.FieldConfigArgument {
	a := listArgs()
	a["first"] = &gql.ArgumentConfig{Type: gql.Int, DefaultValue: defaultPage, Description: "page size, 1..1000"}
	a["offset"] = &gql.ArgumentConfig{Type: gql.Int, Description: "skip this many items (of those that match) instead of giving after"}
	return a
}

// page is one page of a list and what a console shows around it.
type page struct {
	items      any
	totalCount int
	offset     int
	hasNext    bool
	endCursor  string
}

type pageQuery struct {
	first        int // 0: all
	after        string
	offset       int
	nameContains string
}

func readPageQuery(a map[string]any, paged bool) (pageQuery, error) {
	q := pageQuery{after: argString(a, "after"), nameContains: strings.ToLower(argString(a, "nameContains"))}
	if v, ok := a["first"].(int); ok {
		if v < 1 || v > maxPage {
			return q, invalidArgument(fmt.Sprintf("first is %d: it must be between 1 and %d", v, maxPage))
		}
		q.first = v
	} else if paged {
		q.first = defaultPage
	}
	if v, ok := a["offset"].(int); ok {
		if v < 0 {
			return q, invalidArgument(fmt.Sprintf("offset is %d: it must be 0 or more", v))
		}
		if q.after != "" {
			return q, invalidArgument("give after or offset, not both")
		}
		q.offset = v
	}
	return q, nil
}

// pageOf filters items by name, then cuts the page that q asks for. Items are in their list's order (creation
// order, or datapath id for switches), which the cursor relies on.
func pageOf[T any](items []T, q pageQuery, cursor, name func(T) string) (page, error) {
	// The matches are kept as indexes, and only the page's items are copied: a list of 10k objects filtered by a
	// name most of them match would otherwise be copied whole to cut 100 from it.
	var match []int
	if q.nameContains != "" {
		match = make([]int, 0, len(items))
		for i := range items {
			if strings.Contains(strings.ToLower(name(items[i])), q.nameContains) {
				match = append(match, i)
			}
		}
	}
	n := len(items)
	at := func(i int) int { return i }
	if match != nil {
		n = len(match)
		at = func(i int) int { return match[i] }
	}
	p := page{totalCount: n}
	start := min(q.offset, n)
	if q.after != "" {
		start = -1
		for i := range n {
			if cursor(items[at(i)]) == q.after {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return page{}, invalidArgument(fmt.Sprintf("after %q is not the cursor of an item of this list (deleted, or filtered out): start again without after", q.after))
		}
	}
	end := n
	if q.first > 0 {
		end = min(start+q.first, n)
	}
	sel := items[start:end]
	if match != nil {
		sel = make([]T, 0, end-start)
		for _, i := range match[start:end] {
			sel = append(sel, items[i])
		}
		if items == nil {
			sel = nil
		}
	}
	p.items, p.offset, p.hasNext = sel, start, end < n
	if len(sel) > 0 {
		p.endCursor = cursor(sel[len(sel)-1])
	}
	return p, nil
}

// pageType is the object type of a page of item.
func pageType(name string, item *gql.Object) *gql.Object {
	return gql.NewObject(gql.ObjectConfig{Name: name, Description: "one page of a list, after the name filter", Fields: gql.Fields{
		"items":       plain(listOf(item), "", func(p page) any { return p.items }),
		"totalCount":  plain(nn(gql.Int), "how many items match the filter, on every page", func(p page) any { return p.totalCount }),
		"offset":      plain(nn(gql.Int), "how many matching items come before this page", func(p page) any { return p.offset }),
		"hasNextPage": plain(nn(gql.Boolean), "", func(p page) any { return p.hasNext }),
		"endCursor":   plain(gql.String, "give it as after to get the next page; null on an empty page", func(p page) any { return optString(p.endCursor) }),
	}})
}

// pagedList makes the plain list field (whole without arguments, as before) and its ...Page query.
func pagedList[T any](item *gql.Object, pageName, desc string, list func(ctx context.Context) ([]T, error), cursor, name func(T) string) (plainField, pageField *gql.Field) {
	run := func(ctx context.Context, a map[string]any, paged bool) (page, error) {
		q, err := readPageQuery(a, paged)
		if err != nil {
			return page{}, err
		}
		items, err := list(ctx)
		if err != nil {
			return page{}, err
		}
		return pageOf(items, q, cursor, name)
	}
	plainField = root(listOf(item), desc+"; first, after and nameContains page and filter it", listArgs(),
		func(ctx context.Context, a map[string]any) (any, error) {
			p, err := run(ctx, a, false)
			return p.items, err
		})
	pageField = root(nn(pageType(pageName, item)), desc+", one page at a time, with the count of those that match", pageArgs(),
		func(ctx context.Context, a map[string]any) (any, error) {
			return run(ctx, a, true)
		})
	return plainField, pageField
}

// consoleQueries adds the queries for people and consoles to the Query fields, and pages the large lists.
func (b *builder) consoleQueries(fields gql.Fields) {
	ops := b.ops
	fields["portMirrors"], fields["portMirrorPage"] = pagedList(b.pm, "PortMirrorPage", "every port mirror in creation order",
		ops.PortMirrors, func(m model.PortMirror) string { return m.UUID }, func(m model.PortMirror) string { return m.Name })
	fields["vmInstances"], fields["vmInstancePage"] = pagedList(b.vm, "VmInstancePage", "every VM in creation order",
		ops.VmInstances, func(v model.VmInstance) string { return v.UUID }, func(v model.VmInstance) string { return v.Name })
	fields["hosts"], fields["hostPage"] = pagedList(b.host, "HostPage", "every host in creation order",
		ops.Hosts, func(h model.Host) string { return h.UUID }, func(h model.Host) string { return h.Name })
	fields["flowNetworks"], fields["flowNetworkPage"] = pagedList(b.flowNet, "FlowNetworkPage", "every flow network in creation order",
		ops.FlowNetworks, func(f model.FlowNetwork) string { return f.UUID }, func(f model.FlowNetwork) string { return f.Name })
	fields["switches"], fields["switchPage"] = pagedList(b.swtch, "SwitchPage", "every bridge that is or was connected, by datapath id; nameContains matches the datapath id",
		func(ctx context.Context) ([]model.Switch, error) { return ops.Switches(ctx), nil },
		func(s model.Switch) string { return s.DatapathID }, func(s model.Switch) string { return s.DatapathID })

	fields["audits"].Args["actor"] = &gql.ArgumentConfig{Type: gql.String, Description: `only the events of this actor (a token name, "local" or "system")`}
	fields["audits"].Args["resourceType"] = &gql.ArgumentConfig{Type: gql.String, Description: `only the events about this type of object ("PortMirror", "FlowNetwork", ...)`}

	role := gql.NewEnum(gql.EnumConfig{Name: "CallerRole", Values: gql.EnumValueConfigMap{
		"ADMIN":  {Value: RoleAdmin, Description: "may query and mutate"},
		"VIEWER": {Value: RoleViewer, Description: "may query only"},
	}})
	caller := gql.NewObject(gql.ObjectConfig{Name: "Caller", Description: "who a request's token is", Fields: gql.Fields{
		"actor": plain(nn(gql.String), "the name audit events record", func(p principal) any { return p.actor }),
		"role":  plain(nn(role), "", func(p principal) any { return p.role }),
	}})
	fields["me"] = root(nn(caller), `who the request's token is; on loopback without tokens: actor "local", role ADMIN`, nil,
		func(ctx context.Context, _ map[string]any) (any, error) {
			p, ok := principalFrom(ctx)
			if !ok {
				return nil, fmt.Errorf("graphql: no caller in the request context")
			}
			return p, nil
		})

	nicRole := gql.NewEnum(gql.EnumConfig{Name: "NicRole", Values: gql.EnumValueConfigMap{
		"SOURCE":      {Value: service.RoleSource, Description: "the NIC whose traffic is copied"},
		"DESTINATION": {Value: service.RoleDestination, Description: "the NIC that receives the copies"},
	}})
	b.enumsToFill = append(b.enumsToFill, role, nicRole)
	candidate := gql.NewObject(gql.ObjectConfig{Name: "CandidateNic", Fields: gql.Fields{
		"nic":      plain(nn(b.nic), "", func(c service.CandidateNic) any { return c.Nic }),
		"eligible": plain(nn(gql.Boolean), "a session may use the NIC in the role asked", func(c service.CandidateNic) any { return c.Eligible }),
		"rule": plain(gql.String, "when not eligible: the rule that refuses it, as extensions.rule would name it",
			func(c service.CandidateNic) any { return optString(string(c.Rule)) }),
		"reason": plain(gql.String, "when not eligible: the sentence a person reads", func(c service.CandidateNic) any { return optString(c.Reason) }),
	}})
	fields["candidateNics"] = root(listOf(candidate),
		"every VM NIC (of one VM when vmInstanceUuid is given), and whether each may be a session's source or destination in that "+
			"port mirror (or a new one on that flow network), by the rules the session mutations check; SAME_NIC and "+
			"DUPLICATE_SESSION, which need both ends, are left to the mutation",
		gql.FieldConfigArgument{
			"flowNetworkUuid": {Type: nn(gql.ID)},
			"role":            {Type: nn(nicRole)},
			"portMirrorUuid":  {Type: gql.ID},
			"vmInstanceUuid":  {Type: gql.ID},
		},
		func(ctx context.Context, a map[string]any) (any, error) {
			r, _ := a["role"].(service.NicRole)
			return ops.CandidateNics(ctx, service.CandidateQuery{FlowNetworkUUID: argString(a, "flowNetworkUuid"), Role: r,
				PortMirrorUUID: argString(a, "portMirrorUuid"), VmInstanceUUID: argString(a, "vmInstanceUuid")})
		})
}
