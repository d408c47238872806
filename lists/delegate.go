package lists

// delegate reports whether a sender who is not a member posts on behalf
// of a member (Service.PostsFor: a member of an encrypted distribution
// list that is itself a downstream of the incident, e.g. a distribution
// on the distros list). Such a post is distributed marked as not
// verified, and the member it stands for gets no copy: the list had it.
// Commands in it are not run.
func (p *postJob) delegate() bool {
	if p.s.PostsFor == nil || p.from == nil {
		return false
	}
	on := p.s.PostsFor(p.list.Name, p.from.Address)
	if on == "" {
		return false
	}
	for _, m := range p.members {
		if m.Email == on && m.Role == RoleDownstream {
			p.sender = m
			p.opts.Notes = append(p.opts.Notes, "Posted for "+on+" by a member of that list.")
			return true
		}
	}
	return false
}
