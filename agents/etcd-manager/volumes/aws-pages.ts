// Following EC2's NextToken through every page of a Describe call.
//
// EC2 may return fewer items than MaxResults and still have more (and may end
// with an empty page), so the only end is a reply without a token: never the
// count of items. A token seen twice would loop forever; that is an error.

export interface Page<T> {
  items: T[];
  /** Absent, or empty, on the last page. */
  nextToken?: string;
}

/** Items of every page, in order; `fetchPage` gets undefined for the first. */
export async function allPages<T>(what: string, fetchPage: (nextToken: string | undefined) => Promise<Page<T>>): Promise<T[]> {
  const items: T[] = [];
  const seen = new Set<string>();
  let nextToken: string | undefined;
  do {
    const page = await fetchPage(nextToken);
    items.push(...page.items);
    nextToken = page.nextToken || undefined;
    if (nextToken !== undefined) {
      if (seen.has(nextToken)) throw new Error(`${what}: the reply repeated an earlier NextToken (after ${seen.size + 1} pages); stopping instead of looping`);
      seen.add(nextToken);
    }
  } while (nextToken !== undefined);
  return items;
}
