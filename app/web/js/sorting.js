// The list's sort orders: the API's `sort_by` values (app/tickets/sorting.py) and the same
// order in the page, so a conversation changed on the stream lands where the server would
// put it. NULLs come last; ties fall back to the conversation number.

const PRIORITY = { low: 1, medium: 2, high: 3, urgent: 4 };
const activity = (c) => c.last_activity_at ?? null;
const created = (c) => c.created_at ?? null;
const priority = (c) => PRIORITY[c.priority] ?? null;
const waiting = (c) => c.waiting_since ?? null;
const due = (c) => c.sla?.next_due_at ?? null;

/** sort_by -> [[value of a conversation, descending], …]; the last tie-break is the id. */
const ORDERS = {
  last_activity_at_desc: [[activity, true]],
  last_activity_at_asc: [[activity, false]],
  created_at_desc: [[created, true]],
  created_at_asc: [[created, false]],
  priority_desc: [[priority, true], [activity, true]],
  priority_asc: [[priority, false], [activity, true]],
  waiting_since_asc: [[waiting, false], [created, false]],
  waiting_since_desc: [[waiting, true], [created, false]],
  sla_due_at_asc: [[due, false]],
};

export const DEFAULT_SORT = "last_activity_at_desc";
/** The orders offered in the sort menu, in menu order. */
export const SORT_KEYS = ["last_activity_at_desc", "sla_due_at_asc", "waiting_since_asc", "priority_desc",
  "created_at_desc", "created_at_asc", "last_activity_at_asc", "waiting_since_desc", "priority_asc"];

/** A comparator of two conversations (REST shape) in order `sort`. */
export function comparator(sort) {
  const order = ORDERS[sort] || ORDERS[DEFAULT_SORT];
  const idDescending = order[order.length - 1][1];
  return (x, y) => {
    for (const [value, descending] of order) {
      const a = value(x), b = value(y);
      if (a === b) continue;
      if (a === null) return 1;
      if (b === null) return -1;
      return descending ? b - a : a - b;
    }
    return idDescending ? y.id - x.id : x.id - y.id;
  };
}
