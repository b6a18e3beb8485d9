CREATE TABLE IF NOT EXISTS `erp`.`orders` (`event_id` VARCHAR(255) NOT NULL, `order_id` TEXT, `total` NUMERIC(12,2), `placed_at` DATETIME(6), `doc` JSON, PRIMARY KEY (`event_id`));
INSERT INTO `erp`.`orders` (`event_id`, `order_id`, `total`, `placed_at`, `doc`) VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE `event_id` = `event_id`;
SELECT * FROM `erp`.`orders` WHERE 1 = 0
