-- A picture per product (the storefront shows a placeholder without one):
-- an https:// URL or a path on the shop's own site, checked by the catalog
-- component (mart_domain::catalog::check_image_url); the database keeps
-- the bound.
ALTER TABLE products ADD COLUMN image_url text CHECK (length(image_url) <= 2048);
