-- Sample products for `make run` and benchmarks; safe to load twice. Their
-- pictures are served by the storefront (web/shop/images).
INSERT INTO products (id, name, description, category, price_minor, currency, image_url) VALUES
  ('00000000-0000-4000-8000-000000000001', 'Blue enamel mug', 'Holds 350 ml of tea or coffee.', 'kitchen', 1299, 'EUR', '/shop/images/mug.svg'),
  ('00000000-0000-4000-8000-000000000002', 'Chef''s knife', '20 cm carbon steel blade.', 'kitchen', 5900, 'EUR', '/shop/images/knife.svg'),
  ('00000000-0000-4000-8000-000000000003', 'Desk lamp', 'Warm LED light, dimmable.', 'home-office', 3450, 'EUR', '/shop/images/lamp.svg'),
  ('00000000-0000-4000-8000-000000000004', 'Notebook A5', '160 dotted pages.', 'home-office', 799, 'EUR', '/shop/images/notebook.svg'),
  ('00000000-0000-4000-8000-000000000005', 'Wool blanket', 'Merino, 130 x 180 cm.', 'living', 8900, 'EUR', '/shop/images/blanket.svg'),
  ('00000000-0000-4000-8000-000000000006', 'Plant pot', 'Terracotta, 15 cm.', 'garden', 650, 'EUR', '/shop/images/pot.svg')
ON CONFLICT (id) DO UPDATE SET image_url = EXCLUDED.image_url WHERE products.image_url IS NULL;
