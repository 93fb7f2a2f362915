// Placeholder: replaced by the Postgres harness.
export default async function setup(): Promise<void> {}
