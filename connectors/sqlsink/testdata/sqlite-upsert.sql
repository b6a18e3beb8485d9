CREATE TABLE IF NOT EXISTS "erp"."orders" ("event_id" TEXT, "order_id" TEXT NOT NULL, "total" NUMERIC(12,2), "placed_at" TEXT, "doc" TEXT, PRIMARY KEY ("order_id"));
INSERT INTO "erp"."orders" ("event_id", "order_id", "total", "placed_at", "doc") VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON CONFLICT ("order_id") DO UPDATE SET "event_id" = excluded."event_id", "total" = excluded."total", "placed_at" = excluded."placed_at", "doc" = excluded."doc" WHERE "orders"."placed_at" IS NULL OR "orders"."placed_at" <= excluded."placed_at";
SELECT * FROM "erp"."orders" WHERE 1 = 0;
DELETE FROM "erp"."orders" WHERE "order_id" = ? AND ("placed_at" IS NULL OR "placed_at" <= ?)
